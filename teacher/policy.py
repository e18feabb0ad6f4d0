"""The offline teacher's policy: deterministic RULES that answer each purpose's prompt.

This is a rule-based stand-in, not a model. It reads the same prompts a real model gets (the context
travels in fenced JSON blocks) and answers in the same reply formats, so every agent runs its real code.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from agents import replies
from teacher.bundles import CardError, fix_bundle, write_bundle
from teacher.solve import SolveError, solve_reply

DEFECTS = ("wrong_column", "missing_import", "malformed_output")

DOMAIN_TYPES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("vision", "image", "visual", "digit"), ("image_classification",)),
    (("language", "nlp", "text", "sentiment", "review", "politic"), ("text_classification",)),
    (("time", "forecast", "climate", "econom", "finance", "weather", "energy", "astronom"),
     ("time_series_forecasting",)),
    (("tabular", "health", "medic", "bio", "ecolog", "botany", "automotive"),
     ("tabular_classification", "tabular_regression")),
]
ANGLES = (
    "", "with a model that trains in under a minute", "using only the most informative inputs",
    "beating a strong linear baseline", "with careful hyperparameter search", "with a compact ensemble",
    "under a small compute budget", "with robust validation",
)
VERBS = {
    "tabular_classification": "Classify", "tabular_regression": "Predict", "image_classification": "Recognise",
    "time_series_forecasting": "Forecast", "text_classification": "Classify",
}


@dataclass(frozen=True)
class TeacherConfig:
    defect_rate: float = 0.5  # share of first drafts that carry a realistic defect
    solve_format_error_rate: float = 0.0  # share of "solve" replies with no command block, or two
    solve_script: tuple[str, ...] | None = None  # "solve" replies given verbatim, one per assistant turn


class PolicyError(ValueError):
    """The request cannot be answered (unknown purpose, missing context): a 400 for the client."""


def answer(purpose: str, messages: list[dict[str, Any]], config: TeacherConfig, seed: int | None = None,
           tools: list[dict[str, Any]] | None = None) -> str:
    """The reply text. `seed` (the solver's attempt) steers "solve"; `tools` is shaped by the server, not here.
    With a solve_script, a request without a purpose (a client like mini-swe-agent) is a "solve" request."""
    if purpose == "solve" or (not purpose and config.solve_script is not None):
        try:
            return solve_reply(messages, seed=seed, format_error_rate=config.solve_format_error_rate,
                               script=config.solve_script)
        except SolveError as exc:
            raise PolicyError(str(exc)) from None
    handler = {"propose_topics": propose, "write_task": write_task, "fix_task": fix_task}.get(purpose)
    if handler is None:
        raise PolicyError(f"the offline teacher has no policy for purpose {purpose!r}")
    prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    return handler(prompt, config)


def stable(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


# --- proposer -----------------------------------------------------------------------------------


def domain_types(domain: str) -> tuple[str, ...]:
    # Keys match at the start of a word: "time" is in "sentiment", which is no forecasting domain.
    words = re.findall(r"[a-z0-9]+", domain.lower())
    found = [types for keys, types in DOMAIN_TYPES if any(w.startswith(k) for k in keys for w in words)]
    return tuple(t for types in found for t in types)


def propose(prompt: str, config: TeacherConfig) -> str:
    blocks = replies.json_blocks(prompt)
    if len(blocks) < 3:
        raise PolicyError("propose_topics needs the catalog, exclude list and parameters as JSON blocks")
    catalog, exclude, params = blocks[0], set(blocks[1]), blocks[-1]
    wanted = domain_types(params["domain"])
    pool = [d for d in catalog if not wanted or d["task_type"] in wanted] or list(catalog)
    pool.sort(key=lambda d: stable(params["domain"] + d["id"]))
    topics: list[dict[str, Any]] = []
    for angle in ANGLES:
        for d in pool:
            if len(topics) >= params["count"]:
                break
            topic = make_topic(d, angle, params["domain"])
            if topic["title"] not in exclude:
                topics.append(topic)
                exclude.add(topic["title"])
    return "Here are the proposed topics.\n```json\n" + json.dumps(topics, indent=1) + "\n```\n"


def make_topic(d: dict[str, Any], angle: str, domain: str) -> dict[str, Any]:
    label = d.get("label_column") or "target"
    what = {"time_series_forecasting": f"future {label}", "image_classification": f"{label} from images"}.get(
        d["task_type"], f"{label}")
    title = f"{VERBS[d['task_type']]} {what} on {d['id']}" + (f" {angle}" if angle else "")
    description = (f"A {d['task_type'].replace('_', ' ')} task in {domain} on the {d['id']} dataset: "
                   f"predict `{label}` from {', '.join(d.get('input_columns', [])[:6]) or 'the inputs'}. "
                   "A good solution improves on the baseline's priority metric.")
    return {"title": title, "description": description, "task_type": d["task_type"],
            "candidate_datasets": [{"id": d["id"], "source": d.get("source", "builtin"),
                                    "input_columns": d.get("input_columns", []),
                                    "label_column": d.get("label_column")}]}


# --- coder and debugger --------------------------------------------------------------------------


def defect_for(task_id: str, rate: float) -> str | None:
    h = stable(task_id)
    if (h % 1000) >= rate * 1000:
        return None
    return DEFECTS[(h // 1000) % len(DEFECTS)]


def write_task(prompt: str, config: TeacherConfig) -> str:
    blocks = [b for b in replies.json_blocks(prompt) if isinstance(b, dict)]
    if len(blocks) < 2:
        raise PolicyError("write_task needs the dataset card and the task parameters as JSON blocks")
    card, params = blocks[0], blocks[-1]
    try:
        draft = write_bundle(card, task_id=params["task_id"], defect=defect_for(params["task_id"], config.defect_rate))
    except CardError as exc:
        return f"I cannot write a task for this dataset: {exc}"
    meta = {"name": draft.name, "metric": draft.metric, "direction": draft.direction,
            "training_timeout": draft.training_timeout, "description": draft.description,
            "dataset_description": draft.dataset_description}
    parts = ["```json", json.dumps(meta, indent=1), "```"]
    for name, content in draft.files.items():
        parts += [f"FILE: {name}", "```", content.rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"


def fix_task(prompt: str, config: TeacherConfig) -> str:
    error_blocks = replies.fenced_blocks(prompt, "text")
    cards = [b for b in replies.json_blocks(prompt) if isinstance(b, dict)]
    files = replies.files(prompt)
    if not error_blocks or not cards or not files:
        raise PolicyError("fix_task needs the error, the card and the files")
    fixed, why = fix_bundle(files, error_blocks[0], cards[0])
    changed = {name: body for name, body in fixed.items() if files.get(name) != body}
    parts = [f"EXPLANATION: {why}"]
    for name, content in changed.items():
        parts += [f"FILE: {name}", "```", content.rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"
