"""`gymforge export mlgym --out DIR`: validated tasks as a tree MLGym can load.

DIR mirrors the root of an MLGym checkout (MLGym resolves these paths against its repository root):

    configs/tasks/<task_id>.yaml      the task config (MLGym's TaskConfig fields, plus a `gymforge:` block)
    configs/datasets/<task_id>.yaml   the dataset config (data_path, is_local, train/test splits)
    data/<task_id>/                   the bundle's files (baseline.py, evaluate.py, prepare.py, ...) and the
                                      sample_submission.csv that prepare.py wrote
    data/<task_id>/data/              the prepared workspace data (train.csv, test.csv without labels,
                                      README); MLGym copies this dir into the agent's workspace as data/
    data/<task_id>/answers/           the hidden test answers (answers.csv). evaluate.py reads them from
                                      $GF_HIDDEN_DIR, which must point at this directory
    README.md                         the tasks, their metric, direction and baseline, and how to score

Only tasks whose status is `validated` or `graded` are exported, one at a time: each task's data is
prepared by running its prepare.py in the sandbox on the dataset fetched from the object store, exactly
as the debugger did when it validated the task. Path fields follow MLGym's own semantics:
`starter_code`, `sample_submission` and a dataset's `data_path` are relative to the MLGym root;
`dataset_configs` to `configs/`; `baseline_paths` and `evaluation_paths` to the agent's workspace (into
which MLGym copies the starter code flat), so they are plain `baseline.py` / `evaluate.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from agents.artifacts import fetch_dataset
from agents.taskrun import StepFailed, open_workspace
from bus import Bus
from domain.payloads import TaskValidated
from domain.tasks import TaskBundle
from gymforge.app import connect, with_settings
from gymforge.config import Settings
from gymforge.errors import UserError
from sandbox import Backend, SandboxUnavailable, get_backend
from store.db import Store, StoreError

TASK_ENTRYPOINT = "CSVSubmissionTasks"
HIDDEN_ENV = "GF_HIDDEN_DIR"
EXPORT_STATUSES = ("validated", "graded")
DATASET_DOCS = "{dataset_docs}"
PREPARE_FILE = "prepare.py"  # reads the raw data with the labels: exported for provenance, never starter code
ANSWERS_FILE = "answers.csv"

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


# --- the command --------------------------------------------------------------------------------


@dataclass
class Exported:
    task_id: str
    name: str
    task_type: str
    metric: str
    direction: str
    baseline_score: float
    status: str


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


async def export_mlgym(s: Settings, out: Path, *, task_ids: list[str] | None = None,
                       backend: Backend | None = None) -> Summary:
    """Export the validated/graded tasks (optionally only `task_ids`) under `out`; see the module doc."""
    try:
        store = await Store.open(s.db_path, readonly=True)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        ids = await exportable_ids(store, task_ids)
        if not ids:
            which = f" among {', '.join(task_ids)}" if task_ids else ""
            raise UserError(f"no validated or graded tasks{which} in the store at {s.db_path}: "
                            "run the pipeline (`gymforge run`) first")
        try:
            backend = backend or get_backend(s.sandbox)
        except SandboxUnavailable as exc:
            raise UserError(str(exc)) from None
        bus = await connect(s, name="gymforge-export", setup=False)  # the datasets are in its object store
        summary = Summary()
        try:
            try:
                for sub in ("configs/tasks", "configs/datasets", "data"):
                    (out / sub).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot write to --out {out}: {exc.strerror}") from None
            for task_id in ids:  # one task in memory at a time
                try:
                    record = await load_task(store, task_id)
                    summary.exported.append(await export_task(bus, backend, s, record, out))
                    print(f"exported {task_id}", file=sys.stderr)
                except SandboxUnavailable as exc:
                    raise UserError(str(exc)) from None
                except (StepFailed, TaskUnusable) as exc:
                    summary.skipped.append((task_id, one_line(str(exc))))
                except Exception as exc:  # e.g. the dataset is missing from the object store
                    summary.skipped.append((task_id, one_line(f"{type(exc).__name__}: {exc}")))
        finally:
            await bus.close()
        write_atomic(out / "README.md", readme(exported_in(out), s))
        return summary
    finally:
        await store.close()


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- reading the store --------------------------------------------------------------------------


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


async def exportable_ids(store: Store, only: list[str] | None) -> list[str]:
    marks = ",".join("?" * len(EXPORT_STATUSES))
    rows = await store.rows(f"SELECT task_id FROM tasks WHERE status IN ({marks}) ORDER BY task_id",
                            EXPORT_STATUSES)
    ids = [r["task_id"] for r in rows]
    if only:
        wanted = set(only)
        ids = [i for i in ids if i in wanted]
    return ids


async def load_task(store: Store, task_id: str) -> TaskRecord:
    """The task as validated: bundle, score and metrics from its `task.validated` event (the ledger),
    falling back to the tasks row. The event is what the debugger actually ran, whatever later
    events did to the row."""
    rows = await store.rows("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
    if not rows:
        raise TaskUnusable("not in the store")
    row = rows[0]
    payloads = await store.rows(
        "SELECT payload FROM ledger WHERE type = 'task.validated' AND valid = 1"
        " AND json_extract(payload, '$.bundle.task_id') = ?"
        " ORDER BY json_extract(payload, '$.revision') DESC, time DESC LIMIT 1", (task_id,))
    try:
        if payloads:
            v = TaskValidated.model_validate_json(payloads[0]["payload"])
            bundle, revision, score, metrics = v.bundle, v.revision, v.baseline_score, v.baseline_metrics
            runtime: float | None = v.runtime_s
        else:
            bundle = TaskBundle.model_validate_json(row["bundle"] or "")
            revision, score, runtime = row["revision"], row["baseline_score"], row["runtime_s"]
            if score is None:
                raise TaskUnusable("no baseline score recorded")
            metrics = {bundle.metric: float(score)}
    except ValidationError as exc:
        raise TaskUnusable(f"stored bundle does not validate: {exc.errors()[0]['msg']}") from None
    return TaskRecord(bundle=bundle, status=row["status"], revision=int(revision or 0),
                      baseline_score=float(score), baseline_metrics=dict(metrics), runtime_s=runtime,
                      solve_rate=row["solve_rate"])


# --- one task -----------------------------------------------------------------------------------


async def export_task(bus: Bus, backend: Backend, s: Settings, rec: TaskRecord, out: Path) -> Exported:
    """Prepare the data in the sandbox and write this task's files and configs under `out`."""
    b = rec.bundle
    check_name(b.task_id, "task id")
    for name in b.files:
        check_name(name, "file name", nested=True)
    raw = await fetch_dataset(bus, b.data, s.data_dir / "cache" / "datasets")
    scratch = Path(tempfile.mkdtemp(prefix=f".export-{b.task_id}-", dir=out))
    try:
        stage = scratch / "task"
        stage.mkdir()
        for name, content in b.files.items():
            if PurePosixPath(name).parts[0] in ("data", "answers"):
                continue  # the prepared data/ and the hidden answers take these places
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        ws = await open_workspace(backend, b, raw, scratch / "run")  # runs prepare.py
        try:
            workspace, hidden = scratch / "run" / "workspace", ws.hidden_dir
            if (workspace / "data").is_symlink() or not (workspace / "data").is_dir():
                raise TaskUnusable("prepare.py did not leave a data/ directory in the workspace")
            copy_regular_tree(workspace / "data", stage / "data")
            copy_regular_tree(hidden, stage / "answers")
            sample = workspace / "sample_submission.csv"
            if sample.is_file() and not sample.is_symlink():
                shutil.copyfile(sample, stage / "sample_submission.csv")
        finally:
            await ws.close()
        for made in ("data/train.csv", "data/test.csv", f"answers/{ANSWERS_FILE}"):
            if not (stage / made).is_file():
                raise TaskUnusable(f"prepare.py did not write {made} (as a regular file)")
        task_dir = out / "data" / b.task_id
        replace_dir(stage, task_dir)
        write_atomic(out / "configs" / "datasets" / f"{b.task_id}.yaml", dump_yaml(dataset_config(b, task_dir)))
        write_atomic(out / "configs" / "tasks" / f"{b.task_id}.yaml", dump_yaml(task_config(rec, task_dir)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Exported(task_id=b.task_id, name=b.name, task_type=b.task_type, metric=b.metric,
                    direction=b.direction, baseline_score=rec.baseline_score, status=rec.status)


def check_name(name: str, what: str, *, nested: bool = False) -> None:
    p = PurePosixPath(name)
    bad = (not name or p.is_absolute() or ".." in p.parts or "\\" in name or "\0" in name
           or (not nested and (len(p.parts) != 1 or name.startswith("."))))
    if bad:
        raise TaskUnusable(f"unsafe {what} {name!r}")


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


def replace_dir(src: Path, dst: Path) -> None:
    """Move `src` to `dst`, replacing what is there; both live under the same --out directory."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- configs ------------------------------------------------------------------------------------


def rel(task_id: str, *parts: str) -> str:
    return str(PurePosixPath("data", task_id, *parts))


def mlgym_description(text: str) -> str:
    """MLGym fills the description with `str.format(dataset_docs=...)`: keep `{dataset_docs}`, escape
    every other brace so that the format call cannot fail on code or JSON in the text."""
    return DATASET_DOCS.join(part.replace("{", "{{").replace("}", "}}") for part in text.split(DATASET_DOCS))


def starter_files(b: TaskBundle, task_dir: Path) -> list[str]:
    """The files MLGym copies (flat) into the agent's workspace: baseline.py and evaluate.py first, the
    bundle's other starter files, and the sample submission. Never prepare.py, never answers."""
    names: list[str] = []
    for name in ["baseline.py", "evaluate.py", *b.starter_files, "sample_submission.csv"]:
        if name == PREPARE_FILE or name in names or "/" in name:
            continue
        if (task_dir / name).is_file():
            names.append(name)
    return names


def task_config(rec: TaskRecord, task_dir: Path) -> dict[str, Any]:
    b = rec.bundle
    starters = starter_files(b, task_dir)
    cfg: dict[str, Any] = {
        "id": b.task_id,
        "name": b.name,
        "description": mlgym_description(b.description),
        "dataset_configs": [f"datasets/{b.task_id}.yaml"],  # relative to configs/
        "task_entrypoint": TASK_ENTRYPOINT,
        "training_timeout": int(b.training_timeout),
        "use_generic_conda": True,
        "starter_code": [rel(b.task_id, n) for n in starters],  # relative to the MLGym root
        "baseline_paths": ["baseline.py"],  # relative to the agent's workspace
        "baseline_scores": [{b.metric: float(rec.baseline_score)}],
        "evaluation_paths": ["evaluate.py"],  # relative to the agent's workspace
        "evaluation_read_only": True,
    }
    if "sample_submission.csv" in starters:
        cfg["sample_submission"] = rel(b.task_id, "sample_submission.csv")
    # memory_path is left out: MLGym's default is None and its own dump drops None values.
    extra: dict[str, Any] = {
        "task_id": b.task_id,
        "metric": b.metric,
        "direction": b.direction,
        "task_type": b.task_type,
        "baseline_score": float(rec.baseline_score),
        "baseline_metrics": {k: float(v) for k, v in rec.baseline_metrics.items()},
        "status": rec.status,
        "revision": rec.revision,
        "dataset_name": b.dataset_name,
        "answers_dir": rel(b.task_id, "answers"),
        "hidden_dir_env": HIDDEN_ENV,
        "prepare_script": rel(b.task_id, PREPARE_FILE) if PREPARE_FILE in b.files else None,
    }
    if rec.runtime_s is not None:
        extra["baseline_runtime_s"] = float(rec.runtime_s)
    if rec.solve_rate is not None:
        extra["solve_rate"] = float(rec.solve_rate)
    cfg["gymforge"] = {k: v for k, v in extra.items() if v is not None}
    return cfg


def dataset_config(b: TaskBundle, task_dir: Path) -> dict[str, Any]:
    description = b.dataset_description.strip() or (
        f"{b.dataset_name}: data/train.csv holds the training rows with the label, data/test.csv the test rows "
        "without it (column `id` names each row); data/README lists the columns.")
    cfg: dict[str, Any] = {
        "name": b.dataset_name,
        "description": description,
        "data_path": rel(b.task_id, "data"),  # relative to the MLGym root; copied to <workspace>/data
        "is_local": True,
    }
    for split in ("train", "test"):
        if (task_dir / "data" / f"{split}.csv").is_file():
            cfg[f"{split}_split"] = {"name": split, "file_regex": rf"^{split}\.csv$"}
    return cfg


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Block style for multi-line text (PyYAML falls back to quoting where a block cannot hold it).
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


# --- README -------------------------------------------------------------------------------------


def exported_in(out: Path) -> list[Exported]:
    """Every task under `out` (this run's and earlier ones kept by --force), read back from its config."""
    rows: list[Exported] = []
    for path in sorted((out / "configs" / "tasks").glob("*.yaml")):
        try:
            cfg = yaml.safe_load(path.read_text())
            gf = cfg["gymforge"]
            rows.append(Exported(task_id=str(cfg["id"]), name=str(cfg["name"]), task_type=str(gf["task_type"]),
                                 metric=str(gf["metric"]), direction=str(gf["direction"]),
                                 baseline_score=float(gf["baseline_score"]), status=str(gf["status"])))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            continue  # not one of ours
    return rows


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def readme(tasks: list[Exported], s: Settings) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# MLGym tasks exported by gymforge",
        "",
        f"{len(tasks)} task(s); last export {when} from `{s.db_path}` (statuses: {', '.join(EXPORT_STATUSES)}).",
        "Each task's data was prepared by running its `prepare.py` in the sandbox, as when it was validated.",
        "",
        "| task id | name | type | metric | direction | baseline | status |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| `{t.task_id}` | {_cell(t.name)} | {t.task_type} | {t.metric} | {t.direction} "
              f"| {t.baseline_score:.6g} | {t.status} |" for t in tasks]
    lines += [
        "",
        "## Layout",
        "",
        "This directory mirrors the root of an MLGym checkout: copy `configs/` and `data/` into it.",
        "",
        "- `configs/tasks/<task_id>.yaml`: the task (MLGym `TaskConfig` fields). `dataset_configs` are relative",
        "  to `configs/`; `starter_code` and `sample_submission` to the MLGym root; `baseline_paths` and",
        "  `evaluation_paths` to the agent's workspace, into which MLGym copies the starter code flat.",
        "  MLGym hard-codes each task's metric direction, so the `gymforge:` block carries `metric`,",
        "  `direction` and the baseline's metrics; MLGym's config loader ignores that key (with a warning).",
        "- `configs/datasets/<task_id>.yaml`: `data_path: data/<task_id>/data`, which MLGym copies into the",
        "  workspace as `data/` (train.csv, test.csv without the labels, README).",
        "- `data/<task_id>/`: the task's files: `baseline.py`, `evaluate.py`, `sample_submission.csv`, and",
        "  `prepare.py` (how the data was made from the raw dataset; not starter code).",
        "- `data/<task_id>/answers/answers.csv`: the hidden test answers (`id` and the label).",
        "",
        "## Scoring",
        "",
        f"`evaluate.py` reads the answers from `${HIDDEN_ENV}/answers.csv`, so `{HIDDEN_ENV}` must point at",
        "the task's `answers/` directory; without it evaluate.py exits with status 2. It prints exactly one JSON",
        "object of metrics, which is what MLGym's `CSVSubmissionTasks` parses. To reproduce a baseline:",
        "",
        "```sh",
        "T=<task_id>; A=$(pwd)/data/$T/answers; W=$(mktemp -d)",
        "cp data/$T/baseline.py data/$T/evaluate.py data/$T/sample_submission.csv $W/ && cp -r data/$T/data $W/data",
        f"cd $W && python baseline.py && {HIDDEN_ENV}=$A python evaluate.py --submission_file submission.csv",
        "```",
        "",
        "Inside MLGym, evaluate.py runs in",
        "the agent's container: mount `data/<task_id>/answers` there (e.g. `container_mounts`) and export",
        f"`{HIDDEN_ENV}` to its path in the environment setup. Note that MLGym runs evaluate.py in the agent's",
        "own shell, so answers mounted there are readable by the agent; gymforge itself scores in a separate",
        "sandbox step the agent's commands never see.",
        "",
    ]
    return "\n".join(lines)

