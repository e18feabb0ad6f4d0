"""Read queries for `status`, `dlq`, `export` and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from store.db import Store

FUNNEL = (
    "topic.requested", "topic.proposed", "dataset.verified", "dataset.rejected", "task.drafted",
    "task.validated", "task.rejected", "solve.requested", "trajectory.completed", "trajectory.accepted",
    "trajectory.rejected", "task.graded",
)


async def events_by_type(store: Store) -> dict[str, int]:
    rows = await store.rows("SELECT type, COUNT(*) AS n FROM ledger GROUP BY type ORDER BY type")
    return {r["type"]: r["n"] for r in rows}


async def usage_totals(store: Store) -> dict[str, Any]:
    rows = await store.rows(
        "SELECT role, model, COUNT(*) AS calls, SUM(prompt_tokens) AS prompt_tokens,"
        " SUM(completion_tokens) AS completion_tokens, SUM(cost_usd) AS cost_usd, SUM(retries) AS retries"
        " FROM usage GROUP BY role, model ORDER BY role"
    )
    total = {k: sum((r[k] or 0) for r in rows) for k in ("calls", "prompt_tokens", "completion_tokens",
                                                          "cost_usd", "retries")}
    return {"by_role": rows, "total": total}


async def dead_letters(store: Store, *, include_replayed: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    where = "" if include_replayed else "WHERE replayed = 0"
    return await store.rows(
        f"SELECT id, role, reason, subject, deliveries, stream_seq, replayed, time FROM dead_letters {where}"
        " ORDER BY time DESC LIMIT ?", (limit,)
    )


async def dead_letter(store: Store, letter_id: str) -> dict[str, Any] | None:
    rows = await store.rows("SELECT * FROM dead_letters WHERE id = ? OR id LIKE ?", (letter_id, f"{letter_id}%"))
    return rows[0] if len(rows) == 1 else None


async def mark_replayed(store: Store, letter_id: str) -> None:
    await store.write([("UPDATE dead_letters SET replayed = replayed + 1 WHERE id = ?", (letter_id,))])


async def task_counts(store: Store) -> dict[str, int]:
    rows = await store.rows("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def trajectory_counts(store: Store) -> dict[str, int]:
    rows = await store.rows("SELECT status, COUNT(*) AS n FROM trajectories GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


# --- trajectory exports (sft, traj, hf): streamed, filtered and ordered in SQL -----------------------

TRAJECTORY_CHUNK = 16  # rows fetched at a time: a stored trajectory can be megabytes of JSON

TRAJECTORY_ORDERS = {
    # easy first: the task's solve rate descending, tasks never graded last
    "curriculum": "k.solve_rate IS NULL, k.solve_rate DESC, t.task_id, t.attempt",
    "time": "t.time, t.task_id, t.attempt",
}


def _trajectory_where(statuses: tuple[str, ...] | None, task_ids: list[str] | None) -> tuple[str, tuple[Any, ...]]:
    where, params = ["t.traj IS NOT NULL"], []  # a verdict may land before its trajectory
    if statuses:
        where.append(f"t.status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if task_ids:
        where.append(f"t.task_id IN ({','.join('?' * len(task_ids))})")
        params += task_ids
    return " AND ".join(where), tuple(params)


def stream_trajectories(store: Store, *, statuses: tuple[str, ...] | None = None,
                        task_ids: list[str] | None = None, order: str = "time") -> AsyncIterator[dict[str, Any]]:
    """Trajectory rows joined with their task's solve_rate, metric and direction, a chunk at a time."""
    where, params = _trajectory_where(statuses, task_ids)
    return store.stream_rows(
        "SELECT t.id, t.task_id, t.attempt, t.status, t.exit_status, t.submitted, t.score, t.baseline_score,"
        " t.gain, t.tokens, t.steps, t.reasons, t.traj, t.time, k.solve_rate, k.metric, k.direction"
        f" FROM trajectories t LEFT JOIN tasks k ON k.task_id = t.task_id WHERE {where}"
        f" ORDER BY {TRAJECTORY_ORDERS[order]}", params, size=TRAJECTORY_CHUNK)


async def count_trajectories(store: Store, *, statuses: tuple[str, ...] | None = None,
                             task_ids: list[str] | None = None) -> int:
    where, params = _trajectory_where(statuses, task_ids)
    return int(await store.scalar(f"SELECT COUNT(*) FROM trajectories t WHERE {where}", params))


async def unknown_task_ids(store: Store, task_ids: list[str]) -> list[str]:
    """The ids among `task_ids` that name neither a task nor a trajectory in the store."""
    known: set[str] = set()
    for table in ("tasks", "trajectories"):
        rows = await store.rows(f"SELECT DISTINCT task_id FROM {table} WHERE task_id IN"
                                f" ({','.join('?' * len(task_ids))})", tuple(task_ids))
        known |= {r["task_id"] for r in rows}
    return [t for t in task_ids if t not in known]
