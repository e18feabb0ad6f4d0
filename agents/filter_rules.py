"""The filter's pure rules: a trajectory's verdict, its action signature, and the per-task grading state.

No I/O here; agents/filter.py adds the cross-replica parts (duplicate claims, the shared task state).
Modes: "beat", "match" and "any" judge the FINAL submission (the `submit` that ended the episode, or the
autosubmit of submission.csv when a limit ended it): "beat" needs its score strictly better than the
baseline in the metric's direction, "match" no worse, "any" only that it was scored. "valid" is the
paper's rule (Cai & Behl 2026, "at least one valid submission"): any validate or submit of the episode
produced a score, even when the final submission did not; its score is the final submission's when
scored, else the last validate's. "solved" is the mode's score rule alone; an accepted trajectory is
solved, under the token limit and not a duplicate.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from domain.payloads import TaskGraded, TrajectoryCompleted
from domain.trajectory import Trajectory

MODES = ("beat", "match", "any", "valid")
DEFAULT_MODE = "beat"
DEFAULT_MAX_TOKENS = 48_000
KEY_UNSAFE = re.compile(r"[^-_=a-zA-Z0-9]")


@dataclass(frozen=True)
class Verdict:
    solved: bool
    reasons: list[str]  # empty = accepted (before the duplicate check)
    score: float | None  # the score the mode judged (judged_score), None when there is none


def gain(score: float, baseline: float, direction: str) -> float:
    """How much `score` improves on `baseline`, positive when better whatever the direction."""
    return score - baseline if direction == "maximize" else baseline - score


def _finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


def valid_submission(c: TrajectoryCompleted) -> bool:
    """The final submission was scored."""
    return c.submitted and _finite(c.score)


def validate_scores(c: TrajectoryCompleted) -> list[float]:
    """The scores of the episode's validates that produced one, in order."""
    return [s for s in c.validate_scores if s is not None and math.isfinite(s)]


def judged_score(c: TrajectoryCompleted, mode: str) -> float | None:
    """The score `mode` judges: the final submission's; under "valid", else the last validate's."""
    if valid_submission(c):
        return c.score
    scores = validate_scores(c) if mode == "valid" else []
    return scores[-1] if scores else None


def meets_mode(score: float, baseline: float, direction: str, mode: str) -> bool:
    delta = gain(score, baseline, direction)
    return {"beat": delta > 0, "match": delta >= 0, "any": True, "valid": True}[mode]


def no_score_reason(c: TrajectoryCompleted, mode: str) -> str:
    """Why there is nothing for `mode` to judge."""
    why = f"exit status {c.exit_status}" if not c.submitted else "the submission was not scored"
    if mode == "valid":
        return f"no valid score: no validate or submit produced one ({why})"
    if scores := validate_scores(c):
        why += f"; a validate scored {scores[-1]:.6g}, but {mode} judges the final submission"
    return f"no valid submission ({why})"


def score_reason(c: TrajectoryCompleted, mode: str) -> str | None:
    """Why the trajectory fails the mode's score rule, or None when it passes."""
    score = judged_score(c, mode)
    if score is None:
        return no_score_reason(c, mode)
    if meets_mode(score, c.baseline_score, c.direction, mode):
        return None
    rule = "does not beat" if mode == "beat" else "is worse than"
    return f"score {score:.6g} {rule} the baseline {c.baseline_score:.6g} ({c.metric}, {c.direction})"


def tokens_reason(tokens: int, limit: int) -> str | None:
    return f"too long: {tokens} tokens, over the limit of {limit}" if tokens > limit else None


def verdict(c: TrajectoryCompleted, mode: str = DEFAULT_MODE, max_tokens: int = DEFAULT_MAX_TOKENS) -> Verdict:
    """Every rule except duplicates (those need the other trajectories of the task)."""
    why = score_reason(c, mode)
    reasons = [r for r in (why, tokens_reason(c.tokens, max_tokens)) if r]
    return Verdict(solved=why is None, reasons=reasons, score=judged_score(c, mode))


def duplicate_reason(attempt: object, event_id: str) -> str:
    return f"duplicate of accepted attempt {attempt} (trajectory {event_id}): same action sequence"


def actions(trajectory: Trajectory) -> list[str]:
    """The trajectory's actions, whitespace-normalised."""
    return [" ".join(step.action.split()) for step in trajectory.trajectory]


def signature(trajectory: Trajectory) -> str:
    """sha256 over the whitespace-normalised action sequence."""
    return hashlib.sha256(json.dumps(actions(trajectory)).encode()).hexdigest()


def key_token(text: str) -> str:
    """One NATS KV key token for `text`: unsafe characters (dots included) replaced, plus a hash when
    anything was replaced so that distinct texts keep distinct keys."""
    safe = KEY_UNSAFE.sub("_", text)
    if safe != text or not safe:
        safe += "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return safe


# --- per-task grading state ------------------------------------------------------------------


def record(state: dict[str, Any] | None, c: TrajectoryCompleted, v: Verdict, accepted: bool) -> dict[str, Any] | None:
    """The state with this attempt's verdict added, or None when the attempt already has one (idempotent)."""
    if state is not None and str(c.attempt) in state["verdicts"]:
        return None
    new = copy.deepcopy(state) if state is not None else {
        "task_id": c.task_id, "attempts_total": c.attempts_total, "baseline_score": c.baseline_score,
        "direction": c.direction, "verdicts": {},
    }
    new["verdicts"][str(c.attempt)] = {"solved": v.solved, "accepted": accepted, "score": v.score}
    return new


def grade(state: dict[str, Any]) -> TaskGraded | None:
    """The task's grade once every attempt 0..attempts_total-1 has a verdict, else None."""
    n, verdicts = state["attempts_total"], state["verdicts"]
    if any(str(i) not in verdicts for i in range(n)):
        return None
    attempts = [verdicts[str(i)] for i in range(n)]
    baseline, direction = state["baseline_score"], state["direction"]
    solved = [a["score"] for a in attempts if a["solved"]]
    best = max(solved, key=lambda s: gain(s, baseline, direction)) if solved else None
    return TaskGraded(
        task_id=state["task_id"], attempts=n, accepted=sum(1 for a in attempts if a["accepted"]),
        solve_rate=len(solved) / n, best_score=best, baseline_score=baseline,
        gain=gain(best, baseline, direction) if best is not None else None,
    )
