"""The tasks the MLGym export reads and the rows it reports: which tasks are exportable, each one as it was
validated (`TaskRecord`, read through the named queries of store/queries.py, the `task.validated` event
first and the tasks row as fallback), the README row of an exported task (`Exported`), and `TaskUnusable`
for a stored task that cannot be exported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from domain.payloads import TaskValidated
from domain.tasks import TaskBundle
from store import queries
from store.db import Store

EXPORT_STATUSES = ("validated", "graded")


class TaskUnusable(Exception):
    """The stored task cannot be exported (unreadable bundle, unsafe file name, missing outputs)."""


@dataclass
class TaskRecord:
    bundle: TaskBundle
    status: str
    revision: int
    baseline_score: float
    baseline_metrics: dict[str, float]
    runtime_s: float | None
    solve_rate: float | None


@dataclass
class Exported:
    task_id: str
    name: str
    task_type: str
    metric: str
    direction: str
    baseline_score: float
    status: str


async def exportable_ids(store: Store, only: list[str] | None) -> list[str]:
    """The validated or graded tasks' ids, sorted; only those among `only` when it is given."""
    ids = await queries.task_ids_with_status(store, EXPORT_STATUSES)
    if only:
        wanted = set(only)
        ids = [i for i in ids if i in wanted]
    return ids


async def load_task(store: Store, task_id: str) -> TaskRecord:
    """The task as validated: bundle, score and metrics from its `task.validated` event (the ledger),
    falling back to the tasks row. The event is what the debugger actually ran, whatever later
    events did to the row."""
    row = await queries.task_row(store, task_id)
    if row is None:
        raise TaskUnusable("not in the store")
    payload = await queries.validated_payload(store, task_id)
    try:
        if payload is not None:
            return _from_event(row, TaskValidated.model_validate_json(payload))
        return _from_row(row)
    except ValidationError as exc:
        raise TaskUnusable(f"stored bundle does not validate: {exc.errors()[0]['msg']}") from None


def _from_event(row: dict[str, Any], v: TaskValidated) -> TaskRecord:
    return _record(row, v.bundle, v.revision, v.baseline_score, v.baseline_metrics, v.runtime_s)


def _from_row(row: dict[str, Any]) -> TaskRecord:
    bundle = TaskBundle.model_validate_json(row["bundle"] or "")
    score = row["baseline_score"]
    if score is None:
        raise TaskUnusable("no baseline score recorded")
    return _record(row, bundle, row["revision"], score, {bundle.metric: float(score)}, row["runtime_s"])


def _record(row: dict[str, Any], bundle: TaskBundle, revision: int | None, score: float,
            metrics: dict[str, float], runtime: float | None) -> TaskRecord:
    return TaskRecord(bundle=bundle, status=row["status"], revision=int(revision or 0),
                      baseline_score=float(score), baseline_metrics=dict(metrics), runtime_s=runtime,
                      solve_rate=row["solve_rate"])
