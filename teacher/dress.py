"""How the reply styles (teacher/styles.py) dress a canonical reply: thinking that holds WRONG drafts,
markdown habits (file headers, JSON fences and wrappers, shell tags), diffs and elided bodies for fixes,
tool calls as other servers emit them. Pure: every choice is drawn from the generator it is given."""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Sequence
from typing import Any

from teacher.canon import Canon, canon_files

CORRECTION = "Your reply could not be used:"

# What the drafts inside thinking hold: wrong or dangerous, so that a test can show they were not used.
DRAFT_MARK = "gymforge-draft"
DRAFT_COMMAND = "rm -rf data && python prepare.py"
DRAFT_DATASET = f"{DRAFT_MARK}/no-such-dataset"
DRAFT_TITLE = f"Predict tomorrow's weather on {DRAFT_DATASET}"
DRAFT_CODE = (f"# {DRAFT_MARK}: a first attempt, not the final file\nimport pandas as pd\n\ndef main(:\n"
              "    frame = pd.read_csv('data/train.csv'\n")
ELIDED = "# ... rest unchanged ..."


# --- thinking with drafts -----------------------------------------------------------------------------


OPENERS = ("Okay, let me work through this.", "Let me think about what is being asked here.",
           "Alright, first I need to understand the request.", "Hmm. Let me plan this step by step.")


def thinking(canon: Canon, rng: random.Random) -> str:
    """Plausible thinking holding a WRONG or dangerous draft, then the reasoning towards the real answer."""
    opener = rng.choice(OPENERS)
    if canon.kind == "action":
        tag = "" if canon.mlgym else "bash"
        first = canon.command.splitlines()[0] if canon.command else ""
        return (f"{opener} The quickest way to a clean state might be to rebuild everything:\n\n"
                f"```{tag}\n{DRAFT_COMMAND}\n```\n\nNo, wait. That deletes the data, and prepare.py is not in the "
                f"workspace anyway. {canon.thought}\n\nSo the command is `{first}`.")
    if canon.kind == "topics":
        draft = [{"title": DRAFT_TITLE, "description": "A draft.", "task_type": "tabular_regression",
                  "candidate_datasets": [{"id": DRAFT_DATASET, "source": "hub"}]}]
        return (f"{opener} A first draft of the list:\n\n```json\n{json.dumps(draft, indent=1)}\n```\n\n"
                f"But {DRAFT_DATASET} is not a dataset I know, and the domain is not weather. I should ground "
                f"every topic in a dataset I actually know, with its task type and label column.")
    if canon.kind == "bundle":
        meta = {"name": f"{DRAFT_MARK} task", "metric": "draft_metric", "direction": "maximize",
                "training_timeout": 1, "description": "draft", "dataset_description": "draft"}
        return (f"{opener} Sketching the metadata and prepare.py first:\n\n```json\n{json.dumps(meta)}\n```\n\n"
                f"FILE: prepare.py\n```python\n{DRAFT_CODE}```\n\nThat prepare.py does not even parse, and the metric "
                f"is made up. Let me write the files properly, following the card's columns and splits.")
    if canon.kind == "fix":
        name = next(iter(canon.files), "baseline.py")
        return (f"{opener} Maybe the simplest fix:\n\nEXPLANATION: {DRAFT_MARK} rewrite\nFILE: {name}\n```python\n"
                f"{DRAFT_CODE}```\n\nNo, that breaks more than it fixes. Reading the error again: {canon.explanation}")
    return f"{opener} I do not think I can do this one as asked."


def with_think_block(content: str, thought: str, rng: random.Random) -> str:
    """`<think>…</think>` before the content; a third of the time without the opening tag (the chat
    template opened it in the prompt)."""
    opening = "" if rng.random() < 1 / 3 else "<think>\n"
    return f"{opening}{thought}\n</think>\n\n{content}"


# --- markdown habits ----------------------------------------------------------------------------------


def fence_tag(name: str) -> str:
    return {"py": "python", "csv": "csv", "json": "json", "md": "markdown"}.get(name.rpartition(".")[2], "")


FILE_HEADERS = (
    lambda name, tag, body: f"### {name}\n\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"**FILE: {name}**\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"FILE: `{name}`\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"```{tag} title=\"{name}\"\n{body}\n```",
    lambda name, tag, body: f"**{name}**\n\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"## File: {name}\n```{tag}\n{body}\n```",
)


def markdown_files(files: dict[str, str], rng: random.Random, headers: Sequence[int] | None = None) -> str:
    choices = list(headers) if headers is not None else list(range(len(FILE_HEADERS)))
    start = rng.randrange(len(choices))
    return "\n\n".join(FILE_HEADERS[choices[(start + i) % len(choices)]](name, fence_tag(name), body)
                       for i, (name, body) in enumerate(files.items()))


def trailing_comma(dumped: str) -> str:
    """A JSON text with a comma after its last element (a list or object dumped with indent)."""
    return dumped[:-2] + ",\n" + dumped[-1] if len(dumped) > 2 else dumped


def markdown_topics(topics: list[Any], rng: random.Random) -> str:
    listed = json.dumps(topics, indent=2)
    wrapped = json.dumps({"topics": topics}, indent=2)
    variant = rng.randrange(5)
    if variant == 0:
        return f"Here are {len(topics)} research topics grounded in datasets I know.\n\n```JSON\n{listed}\n```\n"
    if variant == 1:
        return f"```\n{wrapped}\n```\n"
    if variant == 2:
        return f"Sure! Here they are:\n\n```json\n{trailing_comma(listed)}\n```\n\nLet me know if you want more."
    if variant == 3:
        return f"```json\n// the proposed topics\n{wrapped}\n```\n"
    return wrapped + "\n"


def markdown_bundle(canon: Canon, rng: random.Random) -> str:
    meta = json.dumps(canon.meta, indent=2)
    fence = rng.choice(("```JSON", "```"))
    return (f"I'll set this task up as follows. The metadata:\n\n{fence}\n{meta}\n```\n\n### The files\n\n"
            f"Each file follows the card's columns and splits.\n\n{markdown_files(canon.files, rng)}\n\n"
            "Let me know if anything should change.\n")


def markdown_fix(canon: Canon, rng: random.Random) -> str:
    if not canon.files:
        return canon.text
    return f"EXPLANATION: {canon.explanation}\n\n{markdown_files(canon.files, rng, headers=(0, 2, 4))}\n"


def markdown_action(canon: Canon, rng: random.Random) -> str:
    single = "\n" not in canon.command
    variant = rng.randrange(3 if single else 2)
    block = {0: f"```sh\n{canon.command}\n```", 1: f"```shell\n{canon.command}\n```",
             2: f"```console\n$ {canon.command}\n```"}[variant]
    return f"THOUGHT: {canon.thought}\n\n{block}\n"


# --- diffs and elisions -------------------------------------------------------------------------------


def prompt_files(messages: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The files a fix_task prompt shows (`FILE: name` + a fenced block)."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    return canon_files(prompt)


def corrected(messages: Sequence[dict[str, Any]]) -> bool:
    return any(m.get("role") == "user" and CORRECTION in str(m.get("content") or "") for m in messages)


def unified(name: str, old: str, new: str) -> str:
    lines = difflib.unified_diff((old + "\n").splitlines(keepends=True), (new + "\n").splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    return "".join(lines).rstrip("\n")


def elided(old: str, new: str) -> str:
    """The new file's changed lines with two lines around them, the rest replaced by an elision comment."""
    a, b = old.splitlines(), new.splitlines()
    changed = [j for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes() if tag != "equal"
               for j in range(j1, max(j2, j1 + 1))]
    first, last = (max(0, min(changed) - 2), min(len(b), max(changed) + 3)) if changed else (0, min(len(b), 5))
    kept = b[first:last]
    return "\n".join([*([ELIDED] if first > 0 else []), *kept, ELIDED])


def diff_fix(canon: Canon, originals: dict[str, str], rng: random.Random) -> str:
    if not canon.files:
        return canon.text
    variant = rng.randrange(3)
    parts = [f"EXPLANATION: {canon.explanation}", ""]
    for name, body in canon.files.items():
        old = originals.get(name, "").rstrip("\n")
        if variant == 0:
            parts += [f"```diff\n{unified(name, old, body)}\n```", ""]
        elif variant == 1:
            parts += [f"FILE: {name}", f"```{fence_tag(name)}\n{elided(old, body)}\n```", ""]
        else:
            parts += [f"FILE: {name}", f"```\n{unified(name, old, body)}\n```", ""]
    return "\n".join(parts)


def odd_tool_calls(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The bash calls as other servers emit them: arguments an object (no id), a twice-encoded string, an
    object with an id, or the calls written in the text Hermes-style with no tool_calls field."""
    variant = rng.randrange(4)
    calls = message["tool_calls"]
    if variant == 3:
        text = "\n".join("<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                                       "arguments": json.loads(c["function"]["arguments"])})
                         + "\n</tool_call>" for c in calls)
        return {"role": "assistant", "content": f"{message.get('content') or ''}\n\n{text}".strip()}
    out = []
    for c in calls:
        args = json.loads(c["function"]["arguments"])
        if variant == 0:
            out.append({"type": "function", "function": {"name": c["function"]["name"], "arguments": args}})
        elif variant == 1:
            out.append({**c, "function": {**c["function"], "arguments": json.dumps(json.dumps(args))}})
        else:
            out.append({**c, "function": {**c["function"], "arguments": args}})
    return {**message, "tool_calls": out}
