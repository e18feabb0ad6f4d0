"""The sandbox re-run behind an exported task: its prepare.py runs again in the sandbox on the raw dataset,
exactly as when the debugger validated the task, and what it made (the workspace's data/, the hidden
answers, the sample submission) is staged with the bundle's files in a scratch directory. Only directories
and regular files are copied out of the sandbox's output. Then the task is scored as MLGym scores it
(`scoring`): the metrics its baseline gets there come back with the staged directory."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agents.taskrun import open_workspace
from domain.tasks import TaskBundle
from gymforge.mlgym.records import TaskUnusable
from gymforge.mlgym.scoring import score_like_mlgym
from sandbox import Backend, Limits

ANSWERS_FILE = "answers.csv"
REQUIRED = ("data/train.csv", "data/test.csv", f"answers/{ANSWERS_FILE}")


@dataclass
class Staged:
    path: Path  # the staged task directory
    metrics: dict[str, float]  # what its baseline scored when evaluated as MLGym evaluates


async def prepare_task(backend: Backend, b: TaskBundle, raw: Path, scratch: Path,
                       limits: Limits | None = None) -> Staged:
    """Run prepare.py on `raw` under `scratch` (with the sandbox settings' `limits`), stage its outputs in
    `scratch`/task, then score the baseline as MLGym would."""
    stage = scratch / "task"
    stage.mkdir()
    write_bundle_files(b, stage)
    ws = await open_workspace(backend, b, raw, scratch / "run", limits)  # runs prepare.py
    try:
        collect_outputs(scratch / "run" / "workspace", ws.hidden_dir, stage)
        for made in REQUIRED:
            if not (stage / made).is_file():
                raise TaskUnusable(f"prepare.py did not write {made} (as a regular file)")
        metrics = await score_like_mlgym(ws, ws.hidden_dir)
    finally:
        await ws.close()
    return Staged(stage, metrics)


def write_bundle_files(b: TaskBundle, stage: Path) -> None:
    for name, content in b.files.items():
        if PurePosixPath(name).parts[0] in ("data", "answers"):
            continue  # the prepared data/ and the hidden answers take these places
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def collect_outputs(workspace: Path, hidden: Path, stage: Path) -> None:
    """Stage prepare.py's outputs: the workspace's data/, the hidden dir as answers/, the sample submission."""
    if (workspace / "data").is_symlink() or not (workspace / "data").is_dir():
        raise TaskUnusable("prepare.py did not leave a data/ directory in the workspace")
    copy_regular_tree(workspace / "data", stage / "data")
    copy_regular_tree(hidden, stage / "answers")
    sample = workspace / "sample_submission.csv"
    if sample.is_file() and not sample.is_symlink():
        shutil.copyfile(sample, stage / "sample_submission.csv")


def copy_regular_tree(src: Path, dst: Path) -> None:
    """Copy directories and regular files only: task code wrote `src`, so symlinks (which could point
    at host files) and special files are left behind. Streams file contents (bounded memory)."""
    dst.mkdir(parents=True, exist_ok=True)
    with os.scandir(src) as entries:
        for e in entries:
            if e.is_symlink():
                continue
            if e.is_dir(follow_symlinks=False):
                copy_regular_tree(Path(e.path), dst / e.name)
            elif e.is_file(follow_symlinks=False):
                shutil.copyfile(e.path, dst / e.name)
