"""Read queries for `status`, `dlq`, the exports and the dashboard: every SELECT the project runs on the store
(bench/ aside) is here, behind a named function that returns plain rows, dicts or values."""

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


USAGE_SUMS = ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd",
              "retries")


def cached_share(row: dict[str, Any]) -> float | None:
    """The share of prompt tokens served from the provider's prefix cache (None without prompt tokens)."""
    prompt = row.get("prompt_tokens") or 0
    return round((row.get("cached_tokens") or 0) / prompt, 4) if prompt else None


async def usage_totals(store: Store) -> dict[str, Any]:
    """Calls, tokens (cached and reasoning ones among them), cost and retries per role and model, and in all;
    each with its `cached_share` of prompt tokens. A store from before the cached columns (opened read-only,
    not yet migrated by the sink) counts none cached."""
    have = await store.columns("usage")
    extra = "".join(f", SUM({c}) AS {c}" if c in have else f", 0 AS {c}" for c in ("cached_tokens", "reasoning_tokens"))
    rows = await store.rows(
        "SELECT role, model, COUNT(*) AS calls, SUM(prompt_tokens) AS prompt_tokens,"
        f" SUM(completion_tokens) AS completion_tokens{extra}, SUM(cost_usd) AS cost_usd, SUM(retries) AS retries"
        " FROM usage GROUP BY role, model ORDER BY role"
    )
    for r in rows:
        r["cached_share"] = cached_share(r)
    total: dict[str, Any] = {k: sum((r[k] or 0) for r in rows) for k in USAGE_SUMS}
    total["cached_share"] = cached_share(total)
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


async def breadth(store: Store) -> dict[str, int]:
    """How wide the generated world is: distinct verified datasets, task types of validated tasks, domains
    of proposed topics."""
    rows = await store.rows(
        "SELECT (SELECT COUNT(DISTINCT dataset_id) FROM datasets WHERE verified = 1) AS datasets,"
        " (SELECT COUNT(DISTINCT task_type) FROM tasks WHERE status IN ('validated', 'graded')) AS task_types,"
        " (SELECT COUNT(DISTINCT domain) FROM topics) AS domains"
    )
    return {k: int(rows[0][k] or 0) for k in ("datasets", "task_types", "domains")}


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


# --- the MLGym export --------------------------------------------------------------------------------


async def task_ids_with_status(store: Store, statuses: tuple[str, ...]) -> list[str]:
    """The ids of the tasks whose status is one of `statuses`, sorted."""
    marks = ",".join("?" * len(statuses))
    rows = await store.rows(f"SELECT task_id FROM tasks WHERE status IN ({marks}) ORDER BY task_id", statuses)
    return [r["task_id"] for r in rows]


async def task_row(store: Store, task_id: str) -> dict[str, Any] | None:
    """The whole tasks row of `task_id` (every column), or None."""
    rows = await store.rows("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
    return rows[0] if rows else None


async def validated_payload(store: Store, task_id: str) -> str | None:
    """The JSON payload of the task's latest valid `task.validated` event (highest revision, then newest)."""
    rows = await store.rows(
        "SELECT payload FROM ledger WHERE type = 'task.validated' AND valid = 1"
        " AND json_extract(payload, '$.bundle.task_id') = ?"
        " ORDER BY json_extract(payload, '$.revision') DESC, time DESC LIMIT 1", (task_id,))
    return rows[0]["payload"] if rows else None


# --- the dashboard -------------------------------------------------------------------------------------

TASK_COLUMNS = ("task_id, name, task_type, metric, direction, status, revision, rounds, baseline_score, runtime_s,"
                " reason, solve_rate, attempts, accepted, best_score, gain, time")
TRAJ_COLUMNS = ("id, task_id, attempt, status, exit_status, submitted, score, baseline_score, gain, tokens, steps,"
                " reasons, time")


async def latest_event_time(store: Store) -> str | None:
    """The time of the newest valid event in the ledger."""
    return await store.scalar("SELECT MAX(time) FROM ledger WHERE valid = 1")


async def events_since(store: Store, since: str) -> dict[str, int]:
    """Events (valid or not) per type from `since` (an ISO time) on."""
    rows = await store.rows("SELECT type, COUNT(*) AS n FROM ledger WHERE time >= ? GROUP BY type", (since,))
    return {r["type"]: r["n"] for r in rows}


async def latest_activity_time(store: Store) -> str | None:
    """The time of the newest ledger row or LLM call."""
    return await store.scalar("SELECT MAX(t) FROM (SELECT MAX(time) AS t FROM ledger UNION ALL"
                              " SELECT MAX(time) FROM usage)")


async def events_per_minute(store: Store, since: str) -> list[dict[str, Any]]:
    """Valid events from `since` on, counted per minute (`m`, YYYY-MM-DDTHH:MM) and `type` (`n`)."""
    return await store.rows("SELECT substr(time, 1, 16) AS m, type, COUNT(*) AS n FROM ledger"
                            " WHERE time >= ? AND valid = 1 GROUP BY m, type", (since,))


async def usage_per_minute(store: Store, since: str) -> list[dict[str, Any]]:
    """LLM usage from `since` on per minute (`m`): tokens (`tok`), cost (`usd`) and calls (`n`)."""
    return await store.rows(
        "SELECT substr(time, 1, 16) AS m, SUM(prompt_tokens + completion_tokens) AS tok, SUM(cost_usd) AS usd,"
        " COUNT(*) AS n FROM usage WHERE time >= ? GROUP BY m", (since,))


async def usage_spent(store: Store) -> dict[str, Any]:
    """Everything spent on LLM calls: `usd`, `tokens` and `calls` (zeros on an empty store)."""
    rows = await store.rows("SELECT COALESCE(SUM(cost_usd), 0) AS usd,"
                            " COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COUNT(*) AS calls"
                            " FROM usage")
    return rows[0]


async def recent_dead_letters(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Dead letters, the ones not replayed first, newest first within each."""
    return await store.rows("SELECT id, role, reason, subject, deliveries, replayed, time FROM dead_letters"
                            " ORDER BY replayed, time DESC LIMIT ?", (limit,))


async def task_list(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """The newest tasks (TASK_COLUMNS), each with its number of `trajectories` and of accepted ones
    (`n_accepted`)."""
    return await store.rows(
        f"SELECT {', '.join('k.' + c.strip() for c in TASK_COLUMNS.split(','))},"
        " (SELECT COUNT(*) FROM trajectories t WHERE t.task_id = k.task_id) AS trajectories,"
        " (SELECT COUNT(*) FROM trajectories t WHERE t.task_id = k.task_id AND t.status = 'accepted') AS n_accepted"
        " FROM tasks k ORDER BY k.time DESC LIMIT ?", (limit,))


async def task_with_bundle(store: Store, task_id: str) -> dict[str, Any] | None:
    """The task's TASK_COLUMNS and its `bundle` JSON, or None."""
    rows = await store.rows(f"SELECT {TASK_COLUMNS}, bundle FROM tasks WHERE task_id = ?", (task_id,))
    return rows[0] if rows else None


async def task_revisions(store: Store, task_id: str) -> list[dict[str, Any]]:
    """The task's drafted revisions in order, with the error each one fixed and its files (JSON)."""
    return await store.rows("SELECT revision, event_id, answers_error, files, time FROM task_revisions"
                            " WHERE task_id = ? ORDER BY revision", (task_id,))


async def task_trajectories(store: Store, task_id: str) -> list[dict[str, Any]]:
    """The task's trajectories (TRAJ_COLUMNS) by attempt."""
    return await store.rows(f"SELECT {TRAJ_COLUMNS} FROM trajectories WHERE task_id = ? ORDER BY attempt",
                            (task_id,))


async def recent_trajectories(store: Store, task_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The newest trajectories (TRAJ_COLUMNS), of one task or of all."""
    where, params = ("WHERE task_id = ?", (task_id,)) if task_id else ("", ())
    return await store.rows(f"SELECT {TRAJ_COLUMNS} FROM trajectories {where} ORDER BY time DESC LIMIT ?",
                            (*params, limit))


async def trajectory_with_steps(store: Store, traj_id: str) -> dict[str, Any] | None:
    """The trajectory's TRAJ_COLUMNS and its recorded `traj` JSON, or None."""
    rows = await store.rows(f"SELECT {TRAJ_COLUMNS}, traj FROM trajectories WHERE id = ?", (traj_id,))
    return rows[0] if rows else None
