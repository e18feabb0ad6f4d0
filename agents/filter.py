"""filter: `trajectory.completed` -> `trajectory.accepted` | `trajectory.rejected`, and `task.graded` once
every attempt of the task has a verdict.

The rules are in agents/filter_rules.py. What spans replicas lives in the JetStream KV bucket `gf-filter`:
- `dup.<task>.<signature[:32]>` -> {"by": event id, "attempt": n}: claimed (atomic create) by the first
  trajectory of the task with that action sequence that passes every other rule; a later one is a
  duplicate, the same one redelivered keeps its claim.
- `task.<task>` -> {task_id, attempts_total, baseline_score, direction, verdicts: {attempt: {solved,
  accepted, score}}}: updated with optimistic concurrency, first verdict per attempt wins.
`task.graded` has an id that depends only on the task, so whoever publishes it, it is one event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import Field

from agents.filter_rules import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODE,
    MODES,
    Verdict,
    duplicate_reason,
    gain,
    grade,
    key_token,
    record,
    signature,
    verdict,
)
from agents.runtime import Agent, AgentContext, Emit, RoleSettings
from bus import Event, Poison, Transient, derive_id
from domain.payloads import TaskGraded, TrajectoryAccepted, TrajectoryCompleted, TrajectoryRejected

log = structlog.get_logger("gymforge.filter")
BUCKET = "gf-filter"
MAX_CONFLICTS = 50
Mode = Literal[MODES]  # type: ignore[valid-type]


def graded_id(task_id: str) -> str:
    return derive_id(task_id, "task.graded", "final")


class FilterSettings(RoleSettings):
    mode: Mode = Field(DEFAULT_MODE, description="beat: the final submission beats the baseline; match: it "
                       "is at least as good; any: it was scored, whatever its score; valid: the paper's rule, "
                       "any validate or submit of the episode was scored (even if the final submission was not)")
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, description="the longest trajectory kept, in tokens")


class FilterAgent(Agent):
    role = "filter"
    consumes = (TrajectoryCompleted,)
    produces = (TrajectoryAccepted, TrajectoryRejected, TaskGraded)
    Settings = FilterSettings
    settings: FilterSettings

    def __init__(self, ctx: AgentContext, settings: FilterSettings | None = None) -> None:
        super().__init__(ctx, settings)
        self.mode = self.settings.mode
        self.max_tokens = self.settings.max_tokens

    async def start(self) -> None:
        self.kv: KeyValue = await self.ctx.bus.js.create_key_value(bucket=BUCKET, history=1)

    async def handle(self, event: Event) -> Sequence[Emit]:
        c = event.payload_as(TrajectoryCompleted)
        if not 0 <= c.attempt < c.attempts_total:
            raise Poison(f"attempt {c.attempt} is outside 0..{c.attempts_total - 1}")
        v = verdict(c, self.mode, self.max_tokens)
        reasons = list(v.reasons)
        if not reasons and (dup := await self.claim(c, event.id)):
            reasons.append(dup)
        state = await self.update_state(c, v, accepted=not reasons)
        log.info("trajectory judged", task_id=c.task_id, attempt=c.attempt, accepted=not reasons, reasons=reasons)
        emits = [self.verdict_emit(c, v, event.id, reasons)]
        if (graded := grade(state)) is not None:
            emits.append(Emit(graded, event_id=graded_id(c.task_id)))
        return emits

    def verdict_emit(self, c: TrajectoryCompleted, v: Verdict, event_id: str, reasons: list[str]) -> Emit:
        if reasons:
            return Emit(TrajectoryRejected(
                task_id=c.task_id, attempt=c.attempt, trajectory_event_id=event_id, reasons=reasons))
        assert v.score is not None  # solved: the mode judged a score
        return Emit(TrajectoryAccepted(
            task_id=c.task_id, attempt=c.attempt, trajectory_event_id=event_id, score=v.score,
            gain=gain(v.score, c.baseline_score, c.direction), tokens=c.tokens))

    async def claim(self, c: TrajectoryCompleted, event_id: str) -> str | None:
        """Claim the action sequence for this trajectory; the duplicate reason when another one holds it."""
        key = f"dup.{key_token(c.task_id)}.{signature(c.trajectory)[:32]}"
        try:
            await self.kv.create(key, json.dumps({"by": event_id, "attempt": c.attempt}).encode())
            return None
        except KeyWrongLastSequenceError:
            entry = await self.kv.get(key)
        holder = json.loads(entry.value or b"{}")
        if holder.get("by") == event_id:
            return None  # redelivered after a crash: the claim is ours
        return duplicate_reason(holder.get("attempt"), holder.get("by", "?"))

    async def update_state(self, c: TrajectoryCompleted, v: Verdict, *, accepted: bool) -> dict[str, Any]:
        """Add this attempt's verdict to the task's state (compare-and-set, retried on conflict)."""
        key = f"task.{key_token(c.task_id)}"
        for _ in range(MAX_CONFLICTS):
            try:
                entry = await self.kv.get(key)
                state, revision = json.loads(entry.value or b"{}"), entry.revision
            except KeyNotFoundError:
                state, revision = None, None
            new = record(state, c, v, accepted)
            if new is None:
                assert state is not None
                return state  # this attempt already has its verdict
            body = json.dumps(new).encode()
            try:
                if revision is None:
                    await self.kv.create(key, body)
                else:
                    await self.kv.update(key, body, last=revision)
                return new
            except KeyWrongLastSequenceError:
                continue  # another replica wrote first: read again
        raise Transient(f"task state {key}: {MAX_CONFLICTS} write conflicts in a row")
