"""The dashboard's views of the store: funnel, per-minute series, tasks with their debug rounds, and
trajectories step by step. Read-only; every function takes an open Store and shapes what the named
queries of store/queries.py return (no SQL here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from store import queries as reads
from store.db import Store

# (stage, its event type, the event type it is a fraction of, the rejections at this stage)
FUNNEL = (
    ("topics requested", "topic.requested", None, None),
    ("topics proposed", "topic.proposed", None, None),
    ("datasets verified", "dataset.verified", "topic.proposed", "dataset.rejected"),
    ("tasks validated", "task.validated", "dataset.verified", "task.rejected"),
    ("solves requested", "solve.requested", None, None),
    ("trajectories completed", "trajectory.completed", "solve.requested", None),
    ("trajectories accepted", "trajectory.accepted", "trajectory.completed", "trajectory.rejected"),
    ("tasks graded", "task.graded", "task.validated", None),
)
RATE_WINDOW_MIN = 10
SERIES_TYPES = ("task.validated", "trajectory.completed", "trajectory.accepted")


def _minute(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _parse(ts: str) -> datetime:
    t = datetime.fromisoformat(ts)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


async def funnel(store: Store) -> dict[str, Any]:
    counts = await reads.events_by_type(store)
    latest = await reads.latest_event_time(store)
    recent: dict[str, int] = {}
    if latest:
        recent = await reads.events_since(store, (_parse(latest) - timedelta(minutes=RATE_WINDOW_MIN)).isoformat())
    stages = []
    for label, etype, of, rejected in FUNNEL:
        n, base = counts.get(etype, 0), counts.get(of, 0) if of else None
        stages.append({"stage": label, "type": etype, "count": n, "of": of,
                       "conversion": (n / base) if base else None,
                       "rejected_type": rejected, "rejected": counts.get(rejected, 0) if rejected else None,
                       "per_min": recent.get(etype, 0) / RATE_WINDOW_MIN})
    return {"stages": stages, "events": counts, "rate_window_min": RATE_WINDOW_MIN, "latest": latest}


async def series(store: Store, minutes: int = 60) -> dict[str, Any]:
    """Per-minute throughput (events of the main stages), tokens and cost over the last `minutes` minutes
    up to the newest event (so a finished run still shows its curve)."""
    latest = await reads.latest_activity_time(store)
    end = _parse(latest) if latest else datetime.now(UTC)
    start = end - timedelta(minutes=minutes - 1)
    axis = [_minute(start + timedelta(minutes=i)) for i in range(minutes)]
    since = start.replace(second=0, microsecond=0).isoformat()
    throughput = {t: [0] * minutes for t in ("all", *SERIES_TYPES)}
    index = {m: i for i, m in enumerate(axis)}
    for r in await reads.events_per_minute(store, since):
        i = index.get(r["m"])
        if i is None:
            continue
        throughput["all"][i] += r["n"]
        if r["type"] in throughput:
            throughput[r["type"]][i] += r["n"]
    tokens, cost, calls = [0] * minutes, [0.0] * minutes, [0] * minutes
    for r in await reads.usage_per_minute(store, since):
        i = index.get(r["m"])
        if i is not None:
            tokens[i], cost[i], calls[i] = r["tok"] or 0, r["usd"] or 0.0, r["n"]
    return {"minutes": axis, "throughput": throughput, "tokens": tokens, "cost_usd": cost, "llm_calls": calls}


async def tasks(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    rows = await reads.task_list(store, limit)
    for r in rows:
        r["solve_rate_so_far"] = (r["n_accepted"] / r["trajectories"]) if r["trajectories"] else None
    return rows


async def task(store: Store, task_id: str) -> dict[str, Any] | None:
    t = await reads.task_with_bundle(store, task_id)
    if t is None:
        return None
    bundle = json.loads(t.pop("bundle") or "null") or {}
    revisions = await reads.task_revisions(store, task_id)
    trajs = await reads.task_trajectories(store, task_id)
    accepted = sum(1 for r in trajs if r["status"] == "accepted")
    return {
        **t, "files": bundle.get("files") or {}, "description": bundle.get("description"),
        "dataset": bundle.get("dataset_name"), "rounds_detail": debug_rounds(revisions, t),
        "trajectories": trajs, "solve_rate_so_far": accepted / len(trajs) if trajs else None,
    }


def debug_rounds(revisions: list[dict[str, Any]], t: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per revision: the error it ran into (the next revision says what it fixed), the files it
    changed, and how the round ended."""
    out: list[dict[str, Any]] = []
    previous: dict[str, str] = {}
    for i, rev in enumerate(revisions):
        files = json.loads(rev["files"] or "{}")
        later = revisions[i + 1] if i + 1 < len(revisions) else None
        if later is not None:
            error, outcome = later["answers_error"], "failed, fixed in the next revision"
        elif t["status"] == "rejected":
            error, outcome = t["reason"], "failed, task rejected"
        elif t["status"] in ("validated", "graded"):
            error, outcome = None, "passed"
        else:
            error, outcome = None, "running"
        changed = {k: v for k, v in files.items() if previous.get(k) != v}
        out.append({"revision": rev["revision"], "time": rev["time"], "fixing": rev["answers_error"],
                    "error": error, "outcome": outcome, "changed_files": changed})
        previous = files
    return out


async def trajectories(store: Store, task_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    return await reads.recent_trajectories(store, task_id, limit)


async def trajectory(store: Store, traj_id: str) -> dict[str, Any] | None:
    r = await reads.trajectory_with_steps(store, traj_id)
    if r is None:
        return None
    traj = json.loads(r.pop("traj") or "null") or {}
    info = traj.get("info") or {}
    steps = [{"step": i, "thought": s.get("thought", ""), "action": s.get("action", ""),
              "observation": s.get("observation", ""), "execution_time": s.get("execution_time"),
              "score": (s.get("state") or {}).get("score"),
              "format_corrections": len((s.get("extra_info") or {}).get("format_corrections") or [])}
             for i, s in enumerate(traj.get("trajectory") or [])]
    keep = ("exit_status", "exit_detail", "submission", "score", "baseline_score", "metric", "direction",
            "validate_scores", "model_stats", "model", "context_tokens")
    return {**r, "trajectory": steps, "info": {k: info.get(k) for k in keep},
            "environment": traj.get("environment"), "recorded": bool(traj)}
