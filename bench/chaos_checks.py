"""What the chaos run reads and asserts: topic outcomes and trajectories in the sink's SQLite store, event
counts in the stream, consumer lag, redeliveries. Pure reads; bench/chaos.py drives, this one judges.

A topic is terminal when its dataset was rejected with a reason, its task was rejected with a reason, or
its task was graded. The invariants (`verify`) hold only once the run has settled.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus import Bus

TERMINAL = ("dataset_rejected", "task_rejected", "graded")

OUTCOMES_SQL = """
SELECT t.id AS topic, t.status AS topic_status, t.reason AS topic_reason,
       k.task_id, k.status AS task_status, k.reason AS task_reason, k.attempts, k.accepted
FROM topics t LEFT JOIN tasks k ON k.trace_id = t.id
"""


def outcome(row: dict[str, Any]) -> str:
    """One topic's state: a TERMINAL value, or where it stands."""
    if row["topic_status"] == "dataset_rejected" and row["topic_reason"]:
        return "dataset_rejected"
    if row["task_status"] == "rejected" and row["task_reason"]:
        return "task_rejected"
    if row["task_status"] == "graded":
        return "graded"
    return row["task_status"] or row["topic_status"]


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from the store, read-only; none while the sink has not created it."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        con.close()


def outcomes(db: Path) -> dict[str, str]:
    """topic (trace id) -> its state."""
    return {r["topic"]: outcome(r) for r in query(db, OUTCOMES_SQL)}


@dataclass
class Snapshot:
    """The stream's counts per subject and every consumer's lag, at one moment."""

    subjects: dict[str, int]
    messages: int
    consumers: dict[str, dict[str, int]]  # durable -> pending, ack_pending, delivered, matched

    def count(self, event_type: str) -> int:
        return self.subjects.get(f"gf.{event_type}", 0)

    @property
    def dead(self) -> int:
        return sum(n for s, n in self.subjects.items() if s.startswith("gf.dead."))

    def drained(self, roles: set[str]) -> bool:
        return roles <= set(self.consumers) and all(
            c["pending"] == 0 and c["ack_pending"] == 0 for c in self.consumers.values())

    @property
    def redeliveries(self) -> int:
        """Deliveries beyond one per message, over every consumer (a server restart may roll some back)."""
        return sum(max(0, c["delivered"] - c["matched"]) for c in self.consumers.values())


def matches(filter_subject: str, subject: str) -> bool:
    f, s = filter_subject.split("."), subject.split(".")
    for i, token in enumerate(f):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(f) == len(s)


async def snapshot(bus: Bus) -> Snapshot:
    stream = bus.settings.stream
    info = await bus.js.stream_info(stream, subjects_filter="gf.>")
    subjects = dict(info.state.subjects or {})
    consumers: dict[str, dict[str, int]] = {}
    for c in await bus.js.consumers_info(stream):
        if not c.config.durable_name:  # ordered consumers (budget watchers, tail) are not the pipeline's
            continue
        filters = c.config.filter_subjects or ([c.config.filter_subject] if c.config.filter_subject else ["gf.>"])
        matched = sum(n for s, n in subjects.items() if any(matches(f, s) for f in filters))
        consumers[c.name] = {"pending": c.num_pending or 0, "ack_pending": c.num_ack_pending or 0,
                             "delivered": (c.delivered.consumer_seq or 0) if c.delivered else 0,
                             "matched": matched}
    return Snapshot(subjects, info.state.messages, consumers)


@dataclass
class Verdict:
    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def require(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


def verify(db: Path, snap: Snapshot, attempts: int, roles: set[str], requested: int) -> Verdict:
    """Every invariant of a settled run; the counts the report prints."""
    v = Verdict()
    states = outcomes(db)
    by_state = Counter(states.values())
    tasks = query(db, "SELECT task_id, status, attempts, accepted, reason FROM tasks")
    trajs = query(db, "SELECT id, task_id, attempt, status, traj IS NOT NULL AS has_traj FROM trajectories")
    ledger = query(db, "SELECT COUNT(*) AS n, COUNT(DISTINCT stream_seq) AS seqs FROM ledger")[0] if db.exists() \
        else {"n": 0, "seqs": 0}
    v.counts = {
        "topics requested": requested, "topics": len(states), "terminal": sum(by_state[s] for s in TERMINAL),
        **{s: by_state[s] for s in TERMINAL},
        "tasks validated": snap.count("task.validated"), "tasks rejected": snap.count("task.rejected"),
        "tasks graded": sum(t["status"] == "graded" for t in tasks), "trajectories": len(trajs),
        "accepted": sum(t["status"] == "accepted" for t in trajs), "redeliveries": snap.redeliveries,
        "dead letters": snap.dead, "events": snap.messages, "ledger rows": ledger["n"],
    }
    v.require(0 < len(states) <= requested, f"{len(states)} topics proposed for {requested} requested")
    v.require(snap.count("topic.proposed") == len(states),
              f"{snap.count('topic.proposed')} topic.proposed events but {len(states)} topics in the store")
    stuck = {t: s for t, s in states.items() if s not in TERMINAL}
    v.require(not stuck, f"{len(stuck)} topic(s) not terminal: {dict(Counter(stuck.values()))} "
                         f"e.g. {sorted(stuck)[:3]}")
    check_trajectories(v, tasks, trajs, attempts)
    check_stream(v, snap, len(trajs), ledger, roles)
    return v


def check_trajectories(v: Verdict, tasks: list[dict[str, Any]], trajs: list[dict[str, Any]], attempts: int) -> None:
    """Each graded task has exactly `attempts` trajectories, one per attempt, each with a verdict."""
    per_task: dict[str, list[dict[str, Any]]] = {}
    for t in trajs:
        per_task.setdefault(t["task_id"], []).append(t)
    graded = {t["task_id"]: t for t in tasks if t["status"] == "graded"}
    for task_id, task in graded.items():
        rows = per_task.get(task_id, [])
        got = sorted(r["attempt"] for r in rows)
        v.require(got == list(range(attempts)), f"graded task {task_id}: attempts {got}, want 0..{attempts - 1}")
        v.require(task["attempts"] == attempts, f"graded task {task_id} says {task['attempts']} attempts")
        v.require(task["accepted"] == sum(r["status"] == "accepted" for r in rows),
                  f"graded task {task_id}: accepted {task['accepted']} != accepted trajectories")
    lost = [t["id"] for t in trajs if not t["has_traj"] or t["status"] not in ("accepted", "rejected")]
    v.require(not lost, f"{len(lost)} trajectory row(s) without a record or a verdict, e.g. {lost[:3]}")
    orphans = sorted(set(per_task) - set(graded))
    v.require(not orphans, f"trajectories of tasks that were not graded: {orphans[:5]}")


def check_stream(v: Verdict, snap: Snapshot, trajectories: int, ledger: dict[str, int], roles: set[str]) -> None:
    """One event per id in the stream and in the ledger; every request answered once; consumers drained."""
    solves, completed = snap.count("solve.requested"), snap.count("trajectory.completed")
    verdicts = snap.count("trajectory.accepted") + snap.count("trajectory.rejected")
    v.require(solves == completed == verdicts == trajectories,
              f"solve.requested {solves}, trajectory.completed {completed}, verdicts {verdicts}, "
              f"trajectory rows {trajectories}: want all equal")
    v.require(snap.count("task.validated") == snap.count("task.graded"),
              f"task.validated {snap.count('task.validated')} != task.graded {snap.count('task.graded')}")
    v.require(ledger["n"] == ledger["seqs"] == snap.messages,
              f"ledger rows {ledger['n']} (distinct stream seqs {ledger['seqs']}) != stream messages {snap.messages}")
    missing = roles - set(snap.consumers)
    v.require(not missing, f"no consumer for {sorted(missing)}")
    for name, c in sorted(snap.consumers.items()):
        v.require(c["pending"] == 0 and c["ack_pending"] == 0,
                  f"consumer {name}: {c['pending']} pending, {c['ack_pending']} un-acked")
