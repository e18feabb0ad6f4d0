"""The `gymforge export mlgym` command: its arguments, the checks on --out, and the export loop (open the
store and the sandbox, then per task: load it, take its dataset from the local cache (NATS only for one
the cache lacks), re-run prepare.py, score it as MLGym does, write its files and configs, report it exported
or skipped, and finally the README and mlgym_tasks.py). Bad input and a missing store or sandbox end in one-line
UserErrors; a task that fails is skipped with its reason. Also the `gymforge export` parent command, whose
sub-parsers the other export formats share."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from agents.taskrun import StepFailed
from gymforge.app import with_settings
from gymforge.config import Settings
from gymforge.errors import UserError
from gymforge.mlgym import layout, records, rerun
from gymforge.mlgym.datasets import DatasetSource
from gymforge.mlgym.readme import readme, tasks_module
from gymforge.mlgym.records import Exported, TaskRecord, TaskUnusable
from sandbox import Backend, SandboxUnavailable, backend_for
from store.db import Store, StoreError

# The `export` command's sub-parsers, per top-level sub-parsers action, so that other modules
# (sft, traj, hf) add their formats next to `mlgym` whatever order they register in.
_EXPORT_SUBPARSERS: weakref.WeakKeyDictionary[argparse._SubParsersAction, argparse._SubParsersAction] = (
    weakref.WeakKeyDictionary()
)


def export_subparsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of `gymforge export`, created on first use for this parser and cached."""
    action = _EXPORT_SUBPARSERS.get(sub)
    if action is None:
        p = sub.add_parser("export", help="write tasks or trajectories out in another format")
        action = p.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
        _EXPORT_SUBPARSERS[sub] = action
    return action


def register(sub: argparse._SubParsersAction) -> None:
    p = export_subparsers(sub).add_parser(
        "mlgym", help="validated tasks as MLGym task/dataset configs with prepared data",
        description="Write every validated or graded task as an MLGym task (configs/ and data/ under DIR).")
    p.add_argument("--out", type=Path, required=True, help="output directory (mirrors an MLGym checkout)")
    p.add_argument("--task", action="append", dest="task_ids", default=None, metavar="TASK_ID",
                   help="export only this task (repeatable)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty DIR, replacing the exported tasks' files")
    p.set_defaults(func=with_settings(cmd_export_mlgym))


@dataclass
class Summary:
    exported: list[Exported] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason)


def cmd_export_mlgym(args: argparse.Namespace, s: Settings) -> int:
    out: Path = args.out
    check_out_dir(out, force=args.force)
    summary = asyncio.run(export_mlgym(s, out, task_ids=args.task_ids))
    for task_id, reason in summary.skipped:
        print(f"skipped {task_id}: {reason}", file=sys.stderr)
    print(f"exported {len(summary.exported)} task(s) to {out}"
          + (f"; skipped {len(summary.skipped)}" if summary.skipped else ""))
    return 1 if summary.skipped else 0


def check_out_dir(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} is not empty: choose a new directory or pass --force")


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def export_mlgym(s: Settings, out: Path, *, task_ids: list[str] | None = None,
                       backend: Backend | None = None) -> Summary:
    """Export the validated/graded tasks (optionally only `task_ids`) under `out`; see the package doc."""
    try:
        store = await Store.open(s.db_path, readonly=True)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        ids = await records.exportable_ids(store, task_ids)
        if not ids:
            which = f" among {', '.join(task_ids)}" if task_ids else ""
            raise UserError(f"no validated or graded tasks{which} in the store at {s.db_path}: "
                            "run the pipeline (`gymforge run`) first")
        try:
            backend = backend or backend_for(s.sandbox)
        except SandboxUnavailable as exc:
            raise UserError(str(exc)) from None
        source = DatasetSource(s)
        try:
            summary = await export_each(store, source, backend, s, ids, out)
        finally:
            await source.close()
        exported = layout.exported_in(out)
        layout.write_atomic(out / "README.md", readme(exported, s))
        layout.write_atomic(out / layout.TASKS_MODULE, tasks_module(exported))
        return summary
    finally:
        await store.close()


async def export_each(store: Store, source: DatasetSource, backend: Backend, s: Settings, ids: list[str],
                      out: Path) -> Summary:
    """Export the tasks one at a time (one in memory at a time); a failing task is skipped with its reason."""
    try:
        for sub in layout.SUBDIRS:
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror}") from None
    summary = Summary()
    for task_id in ids:
        try:
            record = await records.load_task(store, task_id)
            summary.exported.append(await export_task(source, backend, s, record, out))
            print(f"exported {task_id}", file=sys.stderr)
        except SandboxUnavailable as exc:
            raise UserError(str(exc)) from None
        except (StepFailed, TaskUnusable) as exc:
            summary.skipped.append((task_id, one_line(str(exc))))
        except Exception as exc:  # e.g. the dataset is missing from the object store
            summary.skipped.append((task_id, one_line(f"{type(exc).__name__}: {exc}")))
    return summary


async def export_task(source: DatasetSource, backend: Backend, s: Settings, rec: TaskRecord,
                      out: Path) -> Exported:
    """Prepare the data in the sandbox, score it as MLGym does and write this task's files and configs."""
    b = rec.bundle
    layout.check_bundle_names(b)
    raw = await source.fetch(b.data)
    scratch = Path(tempfile.mkdtemp(prefix=f".export-{b.task_id}-", dir=out))
    try:
        staged = await rerun.prepare_task(backend, b, raw, scratch, s.sandbox.limits(float(b.training_timeout)))
        return layout.write_task(rec, staged.path, out, staged.metrics)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
