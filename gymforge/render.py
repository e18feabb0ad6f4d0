"""How events look on a terminal: one readable line per event. Pure functions."""

from __future__ import annotations

from typing import Any

from bus.codec import Envelope

COLORS = {"rejected": "\x1b[31m", "dead": "\x1b[31;1m", "accepted": "\x1b[32m", "validated": "\x1b[32m",
          "graded": "\x1b[36m", "usage": "\x1b[2m"}
RESET = "\x1b[0m"


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def summary(event_type: str, p: dict[str, Any]) -> str:
    """A short human summary of a payload."""
    if event_type.startswith("dead."):
        return f"{p.get('subject')} — {p.get('reason')}"
    s = {
        "topic.requested": lambda: (f"datasets for {p['topic']!r} ({p.get('domain')})" if p.get("topic")
                                    else f"{p.get('count')} × {p.get('domain')} ({p.get('difficulty')})"),
        "topic.proposed": lambda: f"{p.get('title')} [{p.get('task_type') or '?'}]",
        "dataset.verified": lambda: f"{p.get('dataset_id')} ({p.get('source')}) for {p.get('topic', {}).get('title')}",
        "dataset.rejected": lambda: f"{p.get('topic', {}).get('title')}: {'; '.join(p.get('reasons', []))}",
        "task.drafted": lambda: f"{p.get('bundle', {}).get('task_id')} rev {p.get('revision')}"
        + (f" fixing: {str(p.get('answers_error'))[:80]}" if p.get("answers_error") else ""),
        "task.validated": lambda: f"{p.get('bundle', {}).get('task_id')} baseline {_fmt(p.get('baseline_score'))}"
        f" in {_fmt(p.get('runtime_s'))}s after {p.get('rounds')} round(s)",
        "task.rejected": lambda: f"{p.get('task_id')}: {p.get('reason')}",
        "solve.requested": lambda: f"{p.get('bundle', {}).get('task_id')} attempt {p.get('attempt')}",
        "trajectory.completed": lambda: f"{p.get('task_id')}#{p.get('attempt')} {p.get('exit_status')}"
        f" score {_fmt(p.get('score'))} vs {_fmt(p.get('baseline_score'))}, {p.get('steps')} steps",
        "trajectory.accepted": lambda: f"{p.get('task_id')}#{p.get('attempt')} score {_fmt(p.get('score'))}"
        f" gain {_fmt(p.get('gain'))}",
        "trajectory.rejected": lambda: f"{p.get('task_id')}#{p.get('attempt')}: {'; '.join(p.get('reasons', []))}",
        "task.graded": lambda: f"{p.get('task_id')} solve rate {_fmt(p.get('solve_rate'))}"
        f" ({p.get('accepted')}/{p.get('attempts')})",
        "usage": lambda: f"{p.get('role')} {p.get('model')} {p.get('prompt_tokens')}+{p.get('completion_tokens')} tok",
    }.get(event_type)
    try:
        return s() if s else ""
    except Exception:
        return ""


def line(env: Envelope, *, color: bool = False) -> str:
    t = env.time.strftime("%H:%M:%S.%f")[:-3]
    text = f"{t}  {env.type:<22} {env.trace_id[:8]}  {summary(env.type, env.payload or {})}"
    if not color:
        return text
    key = next((k for k in COLORS if k in env.type), None)
    return f"{COLORS[key]}{text}{RESET}" if key else text
