"""The sink's write statements: event -> SQL upserts, and the replayed mark on dead letters. Pure: each
function returns statements; the Store runs them in a batch.

Every upsert's outcome does not depend on arrival order: a later stage never gets overwritten by an earlier
one (status ranks), and replays of the same event change nothing.
"""

from __future__ import annotations

import json
from typing import Any

from bus import DeadLetter
from bus.codec import Envelope
from domain.payloads import (
    DatasetRejected,
    DatasetVerified,
    TaskDrafted,
    TaskGraded,
    TaskRejected,
    TaskValidated,
    TopicProposed,
    TrajectoryAccepted,
    TrajectoryCompleted,
    TrajectoryRejected,
    Usage,
)

Statement = tuple[str, tuple[Any, ...]]

TASK_RANK = "CASE {col} WHEN 'drafted' THEN 0 WHEN 'rejected' THEN 1 WHEN 'validated' THEN 1 ELSE 2 END"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def ledger_row(env: Envelope, subject: str, seq: int | None, payload: dict[str, Any] | None) -> Statement:
    return (
        "INSERT INTO ledger (id, type, subject, trace_id, parent_id, producer, time, stream_seq, valid, payload)"
        " VALUES (?,?,?,?,?,?,?,?,1,?) ON CONFLICT(id) DO NOTHING",
        (env.id, env.type, subject, env.trace_id, env.parent_id, env.producer, env.time.isoformat(), seq,
         dumps(payload)),
    )


def invalid_row(key: str, subject: str, seq: int | None, reason: str, data: str, time: str) -> Statement:
    return (
        "INSERT INTO ledger (id, type, subject, time, stream_seq, valid, reason, payload)"
        " VALUES (?,?,?,?,?,0,?,?) ON CONFLICT(id) DO NOTHING",
        (key, "invalid", subject, time, seq, reason, data),
    )


def replayed_row(letter_id: str) -> Statement:
    """The dead letter `letter_id` came back as a replayed event: mark it replayed."""
    return "UPDATE dead_letters SET replayed = 1 WHERE id = ?", (letter_id,)


def entity_rows(env: Envelope, p: Any) -> list[Statement]:
    t = env.time.isoformat()
    handler = _HANDLERS.get(type(p))
    return handler(env, p, t) if handler else []


def _topic(env: Envelope, p: TopicProposed, t: str) -> list[Statement]:
    return [(
        "INSERT INTO topics (id, title, domain, task_type, status, time) VALUES (?,?,?,?, 'proposed', ?)"
        " ON CONFLICT(id) DO UPDATE SET title=excluded.title, domain=excluded.domain,"
        " task_type=excluded.task_type",
        (env.trace_id, p.title, p.domain, p.task_type, t),
    )]


def _topic_status(trace_id: str, title: str, status: str, reason: str | None, t: str) -> Statement:
    return (
        "INSERT INTO topics (id, title, status, reason, time) VALUES (?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET status=excluded.status, reason=excluded.reason",
        (trace_id, title, status, reason, t),
    )


def _verified(env: Envelope, p: DatasetVerified, t: str) -> list[Statement]:
    return [
        ("INSERT INTO datasets (id, trace_id, dataset_id, source, task_type, verified, split_sizes, data_key, time)"
         " VALUES (?,?,?,?,?,1,?,?,?) ON CONFLICT(id) DO NOTHING",
         (env.id, env.trace_id, p.dataset_id, p.source, p.task_type, dumps(p.split_sizes), p.data.key, t)),
        _topic_status(env.trace_id, p.topic.title, "dataset_verified", None, t),
    ]


def _rejected_dataset(env: Envelope, p: DatasetRejected, t: str) -> list[Statement]:
    reasons = "; ".join(p.reasons)
    return [
        ("INSERT INTO datasets (id, trace_id, verified, reasons, time) VALUES (?,?,0,?,?)"
         " ON CONFLICT(id) DO NOTHING", (env.id, env.trace_id, reasons, t)),
        _topic_status(env.trace_id, p.topic.title, "dataset_rejected", reasons, t),
    ]


def _task_upsert(task_id: str, trace_id: str, status: str, t: str, **cols: Any) -> Statement:
    names = ["task_id", "trace_id", "status", "time", *cols]
    values = (task_id, trace_id, status, t, *cols.values())
    sets = ", ".join(f"{c}=COALESCE(excluded.{c}, tasks.{c})" for c in cols if c != "revision")
    rank_new, rank_old = TASK_RANK.format(col="excluded.status"), TASK_RANK.format(col="tasks.status")
    sql = (
        f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        f" ON CONFLICT(task_id) DO UPDATE SET"
        f" status=CASE WHEN {rank_new} >= {rank_old} THEN excluded.status ELSE tasks.status END"
        + (", revision=MAX(tasks.revision, excluded.revision)" if "revision" in cols else "")
        + (f", {sets}" if sets else "")
    )
    return sql, values


def _drafted(env: Envelope, p: TaskDrafted, t: str) -> list[Statement]:
    b = p.bundle
    return [
        _task_upsert(b.task_id, env.trace_id, "drafted", t, name=b.name, task_type=b.task_type, metric=b.metric,
                     direction=b.direction, revision=p.revision, bundle=dumps(b.model_dump(mode="json"))),
        ("INSERT INTO task_revisions (task_id, revision, event_id, answers_error, files, time) VALUES (?,?,?,?,?,?)"
         " ON CONFLICT(task_id, revision) DO NOTHING",
         (b.task_id, p.revision, env.id, p.answers_error, dumps(b.files), t)),
    ]


def _validated(env: Envelope, p: TaskValidated, t: str) -> list[Statement]:
    b = p.bundle
    return [_task_upsert(b.task_id, env.trace_id, "validated", t, name=b.name, task_type=b.task_type,
                         metric=b.metric, direction=b.direction, revision=p.revision, rounds=p.rounds,
                         baseline_score=p.baseline_score, runtime_s=p.runtime_s,
                         bundle=dumps(b.model_dump(mode="json")))]


def _task_rejected(env: Envelope, p: TaskRejected, t: str) -> list[Statement]:
    return [_task_upsert(p.task_id, env.trace_id, "rejected", t, revision=p.revision, rounds=p.rounds,
                         reason=f"{p.reason}: {p.last_error}"[:2000])]


def _graded(env: Envelope, p: TaskGraded, t: str) -> list[Statement]:
    return [_task_upsert(p.task_id, env.trace_id, "graded", t, solve_rate=p.solve_rate, attempts=p.attempts,
                         accepted=p.accepted, best_score=p.best_score, gain=p.gain,
                         baseline_score=p.baseline_score)]


def _completed(env: Envelope, p: TrajectoryCompleted, t: str) -> list[Statement]:
    return [(
        "INSERT INTO trajectories (id, task_id, attempt, trace_id, status, exit_status, submitted, score,"
        " baseline_score, tokens, steps, traj, time) VALUES (?,?,?,?, 'completed', ?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET task_id=excluded.task_id, attempt=excluded.attempt,"
        " exit_status=excluded.exit_status, submitted=excluded.submitted, score=excluded.score,"
        " baseline_score=excluded.baseline_score, tokens=excluded.tokens, steps=excluded.steps,"
        " traj=excluded.traj",
        (env.id, p.task_id, p.attempt, env.trace_id, p.exit_status, int(p.submitted), p.score, p.baseline_score,
         p.tokens, p.steps, dumps(p.trajectory.model_dump(mode="json")), t),
    )]


def _verdict(traj_id: str, trace_id: str, status: str, t: str, gain: float | None, reasons: str | None) -> Statement:
    return (
        "INSERT INTO trajectories (id, trace_id, status, gain, reasons, time) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET status=excluded.status, gain=excluded.gain, reasons=excluded.reasons",
        (traj_id, trace_id, status, gain, reasons, t),
    )


def _accepted(env: Envelope, p: TrajectoryAccepted, t: str) -> list[Statement]:
    return [_verdict(p.trajectory_event_id, env.trace_id, "accepted", t, p.gain, None)]


def _rejected_traj(env: Envelope, p: TrajectoryRejected, t: str) -> list[Statement]:
    return [_verdict(p.trajectory_event_id, env.trace_id, "rejected", t, None, "; ".join(p.reasons))]


def _usage(env: Envelope, p: Usage, t: str) -> list[Statement]:
    return [(
        "INSERT INTO usage (id, trace_id, role, model, prompt_tokens, completion_tokens, cached_tokens,"
        " reasoning_tokens, cost_usd, latency_s, retries, time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO NOTHING",
        (env.id, env.trace_id, p.role, p.model, p.prompt_tokens, p.completion_tokens, p.cached_tokens,
         p.reasoning_tokens, p.cost_usd, p.latency_s, p.retries, t),
    )]


def _dead(env: Envelope, p: DeadLetter, t: str) -> list[Statement]:
    return [(
        "INSERT INTO dead_letters (id, role, reason, subject, data, data_encoding, deliveries, stream_seq, time)"
        " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
        (env.id, p.role, p.reason, p.subject, p.data, p.data_encoding, p.deliveries, p.stream_seq, t),
    )]


_HANDLERS: dict[type, Any] = {
    TopicProposed: _topic,
    DatasetVerified: _verified,
    DatasetRejected: _rejected_dataset,
    TaskDrafted: _drafted,
    TaskValidated: _validated,
    TaskRejected: _task_rejected,
    TaskGraded: _graded,
    TrajectoryCompleted: _completed,
    TrajectoryAccepted: _accepted,
    TrajectoryRejected: _rejected_traj,
    Usage: _usage,
    DeadLetter: _dead,
}
