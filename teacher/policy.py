"""The offline teacher's policy: deterministic RULES that answer each purpose's prompt.

This is a rule-based stand-in, not a model. It reads the same prompts a real model gets (the context
travels in fenced JSON blocks) and answers in the same reply formats, so every agent runs its real code.
"""

from __future__ import annotations

import hashlib
import itertools
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
    (("time", "sensor", "signal", "motion", "gesture"), ("time_series_classification",)),
    (("health", "medic", "econom", "insur", "count", "visit"), ("count_regression",)),
]
ANGLES = (
    "", "with a model that trains in under a minute", "using only the most informative inputs",
    "beating a strong linear baseline", "with careful hyperparameter search", "with a compact ensemble",
    "under a small compute budget", "with robust validation",
)
VERBS = {
    "tabular_classification": "Classify", "tabular_regression": "Predict", "image_classification": "Recognise",
    "time_series_forecasting": "Forecast", "text_classification": "Classify",
    "time_series_classification": "Classify", "count_regression": "Predict",
}


@dataclass(frozen=True)
class TeacherConfig:
    defect_rate: float = 0.5  # share of first drafts that carry a realistic defect
    solve_format_error_rate: float = 0.0  # share of "solve" replies with no command block, or two
    solve_script: tuple[str, ...] | None = None  # "solve" replies given verbatim, one per assistant turn
    # the Hub datasets it "knows" (the offline mirror's: id, task_type, label_column, input_columns, domain, …),
    # as a real model knows Hub datasets from its training; without any, it proposes what the prompt shows
    knowledge: tuple[dict[str, Any], ...] = ()
    # how the server dresses the canonical replies (teacher/styles.py: plain, think, markdown, ...); the
    # policy's answer is the same in every style
    style: str = "plain"


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
    if len(blocks) < 4:
        raise PolicyError("propose_topics needs the hints, catalog, exclude list and parameters as JSON blocks")
    local, exclude, params = blocks[1], set(blocks[2]), blocks[-1]
    pool = known_datasets(config.knowledge, local)
    if not pool:
        raise PolicyError("the offline teacher knows no dataset with a task and a label column to propose")
    if params.get("topic"):
        topics = [ground_topic(params, pool)]
    else:
        topics = sample_topics(params, in_domain(pool, params["domain"]), exclude)
    return "Here are the proposed topics.\n```json\n" + json.dumps(topics, indent=1) + "\n```\n"


def known_datasets(knowledge: tuple[dict[str, Any], ...], local: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What it can propose: its knowledge of the Hub and the user's own datasets; with no knowledge, every
    dataset of the local catalog the prompt shows (the built-ins too). Only those with a task and a label."""
    shown = [d for d in local if d.get("source") == "local" or not knowledge]
    return [d for d in [*knowledge, *shown] if d.get("task_type") in VERBS and d.get("label_column")]


def in_domain(pool: list[dict[str, Any]], domain: str) -> list[dict[str, Any]]:
    """The datasets of the domain (by the dataset's domain, else by the domain's task types), else all."""
    asked = re.findall(r"[a-z0-9]+", domain.lower())
    by_domain = [d for d in pool if any(a.startswith(w) or w.startswith(a) for a in asked if len(a) >= 4
                                        for w in re.findall(r"[a-z0-9]+", str(d.get("domain", "")).lower()) if len(w) >= 4)]
    wanted = domain_types(domain)
    typed = [d for d in (by_domain or pool) if not wanted or d["task_type"] in wanted]
    return typed or by_domain or pool


def sample_topics(params: dict[str, Any], pool: list[dict[str, Any]], exclude: set[str]) -> list[dict[str, Any]]:
    """`count` topics: every dataset of the pool once (in an order drawn from the domain and difficulty,
    the domain's task types taking turns) before any twice, a new angle each time round."""
    salt = f"{params['domain']}|{params.get('difficulty', 'medium')}|"
    pool = sorted(pool, key=lambda d: stable(salt + d["id"]))
    fitting = [fits(d, params.get("difficulty")) for d in pool]
    pool = by_turns([d for d, ok in zip(pool, fitting, strict=True) if ok]) + by_turns(
        [d for d, ok in zip(pool, fitting, strict=True) if not ok])
    topics: list[dict[str, Any]] = []
    for angle in ANGLES:
        for i, d in enumerate(pool):
            if len(topics) >= params["count"]:
                return topics
            topic = make_topic(d, angle, params["domain"], backup(pool, i))
            if topic["title"] not in exclude:
                topics.append(topic)
                exclude.add(topic["title"])
    return topics


def by_turns(pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pool with its task types taking turns (each type's datasets kept in their order), so that a
    domain of several task types gets each of them early, not only the one with the most datasets."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in pool:
        groups.setdefault(d["task_type"], []).append(d)
    turns = itertools.zip_longest(*groups.values())
    return [d for turn in turns for d in turn if d is not None]


def fits(d: dict[str, Any], difficulty: str | None) -> bool:
    """Easy topics favour small datasets, hard ones large; medium takes any."""
    rows = int(d.get("num_rows") or 0)
    return {"easy": rows <= 2_000, "hard": rows > 2_000}.get(str(difficulty), True) if rows else True


def backup(pool: list[dict[str, Any]], i: int) -> dict[str, Any] | None:
    """The next dataset of the same task type: a second candidate, should the first fail verification."""
    rest = pool[i + 1:] + pool[:i]
    return next((d for d in rest if d["task_type"] == pool[i]["task_type"] and d["id"] != pool[i]["id"]), None)


def ground_topic(params: dict[str, Any], pool: list[dict[str, Any]]) -> dict[str, Any]:
    """Candidates for a given topic: the known datasets whose words it shares most (of its task type)."""
    topic = str(params["topic"])
    wanted = (params.get("task_type"),) if params.get("task_type") else domain_types(topic)
    typed = [d for d in pool if not wanted or d["task_type"] in wanted] or pool
    asked = set(re.findall(r"[a-z0-9]{3,}", topic.lower()))

    def score(d: dict[str, Any]) -> int:
        text = " ".join([d["id"], str(d.get("pretty_name", "")), str(d.get("description", ""))[:400],
                         *d.get("input_columns", []), str(d["label_column"])]).lower()
        return len(asked & set(re.findall(r"[a-z0-9]{3,}", text.replace("_", " ").replace(".", " "))))

    best = sorted(typed, key=lambda d: (-score(d), stable(topic + d["id"])))[:3]
    first = make_topic(best[0], "", params["domain"])
    first["candidate_datasets"] = [candidate(d) for d in best]
    return {**first, "title": topic}


def candidate(d: dict[str, Any]) -> dict[str, Any]:
    return {"id": d["id"], "source": d.get("source", "builtin"), "input_columns": d.get("input_columns", []),
            "label_column": d.get("label_column")}


def make_topic(d: dict[str, Any], angle: str, domain: str, second: dict[str, Any] | None = None) -> dict[str, Any]:
    label = d.get("label_column") or "target"
    what = {"time_series_forecasting": f"future {label}", "image_classification": f"{label} from images",
            "time_series_classification": f"{label} from whole time series",
            "count_regression": f"the count {label}"}.get(d["task_type"], f"{label}")
    title = f"{VERBS[d['task_type']]} {what} on {d['id']}" + (f" {angle}" if angle else "")
    description = (f"A {d['task_type'].replace('_', ' ')} task in {domain} on the {d['id']} dataset: "
                   f"predict `{label}` from {', '.join(d.get('input_columns', [])[:6]) or 'the inputs'}. "
                   "A good solution improves on the baseline's priority metric.")
    return {"title": title, "description": description, "task_type": d["task_type"],
            "candidate_datasets": [candidate(x) for x in (d, second) if x is not None]}


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
        draft = write_bundle(card, task_id=params["task_id"], defect=defect_for(params["task_id"], config.defect_rate),
                             runtime=str(params.get("runtime") or "sklearn"))
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
