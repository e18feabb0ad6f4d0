"""A real, validated task for solver tests: a teacher-written bundle over a real dataset, its raw data,
and the baseline's score measured in the bwrap sandbox (as the debugger does)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agents.artifacts import upload_dataset
from agents.taskrun import open_workspace
from bus import Bus
from domain.payloads import SolveRequested
from domain.tasks import DataRef, TaskBundle
from sandbox import get_backend
from teacher.bundles import write_bundle
from tests.test_bundles import dataset, write_raw


@dataclass
class ReadyTask:
    bundle: TaskBundle
    raw: Path
    baseline_score: float

    def request(self, attempt: int = 0, attempts_total: int = 1, data: DataRef | None = None) -> SolveRequested:
        bundle = self.bundle if data is None else self.bundle.model_copy(update={"data": data})
        return SolveRequested(bundle=bundle, attempt=attempt, attempts_total=attempts_total,
                              baseline_score=self.baseline_score)

    async def upload(self, bus: Bus) -> DataRef:
        return await upload_dataset(bus, self.raw)


def build_task(root: Path, task_type: str = "tabular_classification", task_id: str = "t-solver") -> ReadyTask:
    card, splits = dataset(task_type)
    raw, card = write_raw(root, card, splits)
    draft = write_bundle(card, task_id=task_id)
    bundle = TaskBundle(task_id=task_id, name=draft.name, task_type=draft.task_type, description=draft.description,
                        dataset_name=draft.dataset_name, dataset_description=draft.dataset_description,
                        metric=draft.metric, direction=draft.direction, training_timeout=draft.training_timeout,
                        files=draft.files, data=DataRef(key="local", splits={}))
    return ReadyTask(bundle=bundle, raw=raw, baseline_score=asyncio.run(baseline_score(bundle, raw)))


async def baseline_score(bundle: TaskBundle, raw: Path) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="baseline-"))
    try:
        ws = await open_workspace(get_backend("bwrap"), bundle, raw, workdir)
        try:
            result = await ws.run("baseline", "python baseline.py", timeout=bundle.training_timeout)
            assert result.ok, result.stderr
            return (await ws.evaluate()).value
        finally:
            await ws.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
