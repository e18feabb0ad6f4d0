"""The MLGym tree an export writes: a staged task moved into `data/<task_id>/`, its dataset and task configs
as YAML under `configs/` (MLGym's TaskConfig and dataset fields with MLGym's path semantics, plus a
`gymforge:` block), a requirements.txt when the task needs more than MLGym's generic environment, and those
configs read back to list every task in DIR. Files are replaced atomically
and every name that comes from a task is checked before it becomes a path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from domain.tasks import TaskBundle
from gymforge.mlgym.records import Exported, TaskRecord, TaskUnusable
from gymforge.mlgym.requirements import FILE_NAME as REQUIREMENTS_FILE
from gymforge.mlgym.requirements import task_requirements
from gymforge.mlgym.scoring import MLGYM_ANSWERS, baseline_scores

TASK_ENTRYPOINT = "CSVSubmissionTasks"
HIDDEN_ENV = "GF_HIDDEN_DIR"
DATASET_DOCS = "{dataset_docs}"
PREPARE_FILE = "prepare.py"  # reads the raw data with the labels: exported for provenance, never starter code
SUBDIRS = ("configs/tasks", "configs/datasets", "data")
TASKS_MODULE = "mlgym_tasks.py"  # the tasks' entries for MLGym's TASKS dict


def write_task(rec: TaskRecord, stage: Path, out: Path, metrics: dict[str, float]) -> Exported:
    """Move the staged task to `out`/data/<task_id> and write its two configs (`metrics`: what the baseline
    scored when evaluated as MLGym evaluates); the README row."""
    b = rec.bundle
    scores = baseline_scores(rec.baseline_metrics, metrics)
    requirements = task_requirements(b.files)
    if requirements is not None:
        (stage / REQUIREMENTS_FILE).write_text(requirements)
    task_dir = out / "data" / b.task_id
    replace_dir(stage, task_dir)
    write_atomic(out / "configs" / "datasets" / f"{b.task_id}.yaml", dump_yaml(dataset_config(b, task_dir)))
    cfg = task_config(rec, task_dir, scores, with_requirements=requirements is not None)
    write_atomic(out / "configs" / "tasks" / f"{b.task_id}.yaml", dump_yaml(cfg))
    return Exported(task_id=b.task_id, name=b.name, task_type=b.task_type, metric=b.metric,
                    direction=b.direction, baseline_score=rec.baseline_score, status=rec.status)


def check_name(name: str, what: str, *, nested: bool = False) -> None:
    p = PurePosixPath(name)
    bad = (not name or p.is_absolute() or ".." in p.parts or "\\" in name or "\0" in name
           or (not nested and (len(p.parts) != 1 or name.startswith("."))))
    if bad:
        raise TaskUnusable(f"unsafe {what} {name!r}")


def check_bundle_names(b: TaskBundle) -> None:
    """The task id and every file name of the bundle are safe to use as paths under --out."""
    check_name(b.task_id, "task id")
    for name in b.files:
        check_name(name, "file name", nested=True)


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


def task_config(rec: TaskRecord, task_dir: Path, scores: dict[str, float], *,
                with_requirements: bool = False) -> dict[str, Any]:
    b = rec.bundle
    starters = starter_files(b, task_dir)
    cfg: dict[str, Any] = {
        "id": b.task_id,
        "name": b.name,
        "description": mlgym_description(b.description),
        "dataset_configs": [f"datasets/{b.task_id}.yaml"],  # relative to configs/
        "task_entrypoint": TASK_ENTRYPOINT,
        "training_timeout": int(b.training_timeout),
        "use_generic_conda": not with_requirements,
        "starter_code": [rel(b.task_id, n) for n in starters],  # relative to the MLGym root
        "baseline_paths": ["baseline.py"],  # relative to the agent's workspace
        "baseline_scores": [dict(scores)],  # every metric evaluate.py prints, as MLGym's own tasks do
        "evaluation_paths": ["evaluate.py"],  # relative to the agent's workspace
        "evaluation_read_only": True,
    }
    if "sample_submission.csv" in starters:
        cfg["sample_submission"] = rel(b.task_id, "sample_submission.csv")
    if with_requirements:  # relative to the MLGym root, like MLGym's own tasks' requirements
        cfg["requirements_path"] = rel(b.task_id, REQUIREMENTS_FILE)
    # Where MLGym's close() copies the agent's memory (without it MLGym writes a host file named `None`).
    cfg["memory_path"] = rel(b.task_id, "memory.json")
    cfg["gymforge"] = gymforge_block(rec)
    return cfg


def gymforge_block(rec: TaskRecord) -> dict[str, Any]:
    """What MLGym's config has no field for (metric direction, baseline metrics, provenance); no Nones."""
    b = rec.bundle
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
        "answers_mount": MLGYM_ANSWERS,  # mount answers_dir there (`container_mounts`) when running in MLGym
        "prepare_script": rel(b.task_id, PREPARE_FILE) if PREPARE_FILE in b.files else None,
    }
    if rec.runtime_s is not None:
        extra["baseline_runtime_s"] = float(rec.runtime_s)
    if rec.solve_rate is not None:
        extra["solve_rate"] = float(rec.solve_rate)
    return {k: v for k, v in extra.items() if v is not None}


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
