"""How the reply corpus (tests/test_reply_corpus.py) is read by this checkout's parsers and by those of an
earlier revision, side by side: read right, refused right, refused although readable (a re-ask lost),
read WRONG (accepted, but not what the reply says, or a reply that should have been refused), crashed.

    .venv/bin/python bench/bench_replies.py [--base REV]      # REV: default 5033d0f, before issue 15

The earlier revision is checked out in a temporary git worktree and its parsers are run in a subprocess
over the same cases, through the same path a role takes: parse_reply on a chat.completion body, then the
role's parser (a cut-off reply counts as refused only where the code refuses one). Not a timing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("read right", "refused right", "refused a readable reply", "read wrong", "crashed")

# Run inside a checkout (cwd): reads the cases as JSON on stdin, prints one outcome per case.
READER = r'''
import inspect, json, sys
from agents.coder import parse_bundle
from agents.debugger import parse_fix
from agents.llm import Completion, parse_reply
from agents.proposer import parse_topics
from agents.replies import ReplyError
from agents.solver.actions import FormatError
from agents.solver.interface import BashInterface

FIELDS = set(inspect.signature(Completion).parameters)

def completion(reply):
    given = {"text": reply.text, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.0, "latency_s": 0.0,
             "retries": 0, "tool_calls": reply.tool_calls, "finish_reason": getattr(reply, "finish_reason", None)}
    return Completion(**{k: v for k, v in given.items() if k in FIELDS})

def read(case, known):
    message = {"role": "assistant", "content": case["content"]}
    if case["reasoning_content"] is not None:
        message["reasoning_content"] = case["reasoning_content"]
    if case["tool_calls"]:
        message["tool_calls"] = case["tool_calls"]
    reply = parse_reply({"choices": [{"message": message, "finish_reason": case["finish"]}], "usage": {}})
    c = completion(reply)
    if getattr(c, "cut_off", False):  # where the code knows the finish reason, a cut-off reply is re-asked
        raise ReplyError("cut off")
    role = case["role"]
    if role == "topics":
        return [t.title for t in parse_topics(reply.text)]
    if role == "bundle":
        return parse_bundle(reply.text)[1]
    if role == "fix":
        fix = parse_fix(reply.text, known) if len(inspect.signature(parse_fix).parameters) > 1 else parse_fix(reply.text)
        return fix[0]
    return BashInterface(action_format=role).parse(c).command

data = json.load(sys.stdin)
for case in data["cases"]:
    try:
        got = read(case, data["known"])
    except (ReplyError, FormatError):
        print("refused right" if case["refuse"] else "refused a readable reply")
        continue
    except Exception:
        print("crashed")
        continue
    print("read right" if not case["refuse"] and got == case["expect"] else "read wrong")
'''


def outcomes(checkout: Path, cases: list[dict[str, Any]], known: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", READER], cwd=checkout, input=json.dumps({"cases": cases, "known": known}),
                          capture_output=True, text=True, env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise SystemExit(f"bench_replies: the reader failed in {checkout}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.split("\n")[:-1]


def table(name: str, results: list[str], cases: list[dict[str, Any]]) -> None:
    counts = Counter(results)
    print(f"{name}: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES) + f" (of {len(results)})")
    wrong = [c["id"] for c, r in zip(cases, results, strict=True) if r in ("read wrong", "crashed")]
    if wrong:
        print(f"  read wrong or crashed: {', '.join(wrong[:12])}{' …' if len(wrong) > 12 else ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="5033d0f", help="the earlier revision (default: before issue 15)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests import test_reply_corpus as corpus

    cases = [asdict(c) for c in corpus.CASES]
    known = list(corpus.KNOWN)
    with tempfile.TemporaryDirectory(prefix="bench-replies-") as tmp:
        old = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.base], check=True)
        try:
            before = outcomes(old, cases, known)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    now = outcomes(ROOT, cases, known)
    print(f"{len(cases)} reply styles ({sum(1 for c in cases if c['refuse'])} to be refused with a correction)")
    table(f"base {args.base}", before, cases)
    table("this checkout", now, cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
