"""`gymforge export mlgym`: the first half of the pipeline for real (offline teacher, bwrap sandbox, a real
nats-server), then the export, checked against MLGym's config fields and by re-running every exported
baseline from the exported files alone."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml

from bus import EmbeddedNats
from gymforge import cli
from gymforge import mlgym as export_mlgym
from gymforge.errors import UserError
from sandbox import Limits, Mount, get_backend
from tests.helpers.cli import ROOT, Result

# MLGym's BaseTaskConfig / BaseDatasetConfig / BaseSplitConfig (mlgym/configs/task.py, dataset.py):
# every field name, and the type each must have in our YAML.
TASK_FIELDS = {
    "id", "name", "description", "dataset_configs", "task_entrypoint", "training_timeout", "requirements_path",
    "benchmark_name", "use_generic_conda", "starter_code", "baseline_paths", "baseline_scores",
    "sample_submission", "evaluation_paths", "evaluation_read_only", "secret_files", "memory_path",
}
TASK_TYPES: dict[str, type] = {
    "id": str, "name": str, "description": str, "dataset_configs": list, "task_entrypoint": str,
    "training_timeout": int, "use_generic_conda": bool, "starter_code": list, "baseline_paths": list,
    "baseline_scores": list, "evaluation_paths": list, "evaluation_read_only": bool, "sample_submission": str,
    "memory_path": str,
}
DATASET_FIELDS = {"name", "description", "data_path", "is_local", "train_split", "valid_split", "test_split"}
DATASET_TYPES: dict[str, type] = {"name": str, "description": str, "data_path": str, "is_local": bool}

# The real CLI, with `export_mlgym` added to the command modules if cli.py does not list it yet.
LAUNCH = (
    "import sys\n"
    "from gymforge import cli\n"
    "from gymforge import mlgym as export_mlgym\n"
    "modules = cli._modules\n"
    "if export_mlgym not in modules():\n"
    "    cli._modules = lambda: [*modules(), export_mlgym]\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


async def gymforge(*args: str, env: dict[str, str], timeout: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCH, *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exact_type(value: Any, want: type) -> bool:
    return type(value) is want  # bool is not an int here, nor an int a bool


def csv_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


def csv_column(path: Path, name: str) -> list[str]:
    with path.open(newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def stored_tasks(db: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT task_id, status, metric, direction, baseline_score FROM tasks"
                           " WHERE status IN ('validated', 'graded')").fetchall()
    finally:
        con.close()
    return {r["task_id"]: dict(r) for r in rows}


def check_task(out: Path, task_id: str, stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's YAML against MLGym's fields, types and path rules; returns (task cfg, dataset cfg)."""
    cfg = yaml.safe_load((out / "configs" / "tasks" / f"{task_id}.yaml").read_text())
    assert set(cfg) - TASK_FIELDS == {"gymforge"}, set(cfg) - TASK_FIELDS
    for name, want in TASK_TYPES.items():
        assert exact_type(cfg.get(name), want), (task_id, name, cfg.get(name))
    for name in ("dataset_configs", "starter_code", "baseline_paths", "evaluation_paths"):
        assert cfg[name] and all(isinstance(p, str) for p in cfg[name]), (name, cfg[name])
    assert cfg["id"] == task_id and cfg["task_entrypoint"] == "CSVSubmissionTasks"
    assert cfg["evaluation_read_only"] is True and cfg["training_timeout"] > 0
    assert cfg["memory_path"] == f"data/{task_id}/memory.json"
    # MLGym's generic environment has no statsmodels: a task importing it gets its own requirements.
    needs_own = "statsmodels" in (out / "data" / task_id / "baseline.py").read_text()
    assert cfg["use_generic_conda"] is (not needs_own), (task_id, cfg["use_generic_conda"])
    if needs_own:
        assert cfg["requirements_path"] == f"data/{task_id}/requirements.txt"
        assert "statsmodels==" in (out / cfg["requirements_path"]).read_text()
    else:
        assert "requirements_path" not in cfg

    # MLGym fills the description with str.format(dataset_docs=...): it must survive that.
    assert "{dataset_docs}" in cfg["description"]
    filled = cfg["description"].format(dataset_docs="DATASET DOCS")
    assert "DATASET DOCS" in filled and "SUBMISSION FORMAT" in filled

    # baseline_scores: one {metric: float} holding every metric evaluate.py prints (as MLGym's own tasks),
    # the recorded baseline's.
    gf = cfg["gymforge"]
    assert gf["metric"] == stored["metric"] and gf["direction"] == stored["direction"]
    assert gf["direction"] in ("maximize", "minimize") and gf["task_id"] == task_id
    assert len(cfg["baseline_scores"]) == 1 and exact_type(cfg["baseline_scores"][0], dict)
    scores = cfg["baseline_scores"][0]
    assert len(scores) >= 2 and all(exact_type(v, float) for v in scores.values()), scores
    assert math.isclose(scores[stored["metric"]], stored["baseline_score"], rel_tol=1e-12)
    assert gf["baseline_metrics"] == scores

    # Paths: starter_code and sample_submission from the MLGym root (= out), baseline/evaluation paths
    # from the workspace into which MLGym copies the starter code flat.
    for p in cfg["starter_code"]:
        assert not Path(p).is_absolute() and (out / p).is_file(), p
    flat = {Path(p).name for p in cfg["starter_code"]}
    assert "prepare.py" not in flat and not any("answers" in p for p in cfg["starter_code"])
    for p in cfg["baseline_paths"] + cfg["evaluation_paths"]:
        assert p in flat, (p, flat)
    assert (out / cfg["sample_submission"]).is_file()

    # Dataset configs resolve relative to configs/.
    assert cfg["dataset_configs"] == [f"datasets/{task_id}.yaml"]
    ds = yaml.safe_load((out / "configs" / cfg["dataset_configs"][0]).read_text())
    assert set(ds) <= DATASET_FIELDS, set(ds) - DATASET_FIELDS
    for name, want in DATASET_TYPES.items():
        assert exact_type(ds.get(name), want), (task_id, name, ds.get(name))
    assert ds["is_local"] is True and ds["description"].strip()
    data = out / ds["data_path"]
    assert data.is_dir() and ds["data_path"] == f"data/{task_id}/data"
    for split in ("train_split", "test_split"):
        spec = ds[split]
        assert set(spec) == {"name", "file_regex"} and all(isinstance(v, str) for v in spec.values())
        assert [f.name for f in data.iterdir() if re.fullmatch(spec["file_regex"], f.name)] == [f"{spec['name']}.csv"]

    # The labels are only in the answers, which MLGym never copies into the workspace.
    answers = out / gf["answers_dir"] / "answers.csv"
    assert answers.is_file() and data not in answers.parents
    labels = [c for c in csv_header(answers) if c != "id"]
    assert labels and not set(labels) & set(csv_header(data / "test.csv"))
    assert set(labels) <= set(csv_header(data / "train.csv"))
    assert csv_column(data / "test.csv", "id") == csv_column(answers, "id")
    return cfg, ds


async def rerun_baseline(out: Path, cfg: dict[str, Any], ds: dict[str, Any], work: Path) -> dict[str, float]:
    """What MLGym does with the export: starter code flat in a fresh workspace, the dataset as data/, run
    the baseline, then the evaluation with the answers dir mounted at /answers (MLGym's container_mounts)
    and no GF_HIDDEN_DIR. Through the sandbox."""
    ws = work / f"ws-{cfg['id']}"
    ws.mkdir()
    for p in cfg["starter_code"]:
        shutil.copyfile(out / p, ws / Path(p).name)
    shutil.copytree(out / ds["data_path"], ws / "data")
    answers = out / cfg["gymforge"]["answers_dir"]
    session = await get_backend().open(ws, Limits(wall_time_s=float(cfg["training_timeout"])))
    try:
        r = await session.exec(f"python {cfg['baseline_paths'][0]}", timeout=cfg["training_timeout"])
        assert r.ok, (cfg["id"], r.stderr[-2000:])
        r = await session.exec(f"python {cfg['evaluation_paths'][0]} --submission_file submission.csv",
                               timeout=120, mounts=[Mount(answers, "/answers", read_only=True)])
        assert r.ok, (cfg["id"], r.stderr[-2000:])
    finally:
        await session.close()
    metrics = json.loads(r.stdout + r.stderr)  # the whole output, as MLGym's CSVSubmissionTasks parses it
    assert isinstance(metrics, dict)
    return metrics


@pytest.mark.timeout(900)
async def test_a_real_pipeline_run_ends_in_training_data_and_mlgym_tasks(nats_server: EmbeddedNats,
                                                                          tmp_path: Path) -> None:
    """`gymforge run` end to end (the README's main command, smaller), then its SFT export and `export mlgym`."""
    data_dir, out = tmp_path / "gf", tmp_path / "export"
    env = {"GYMFORGE_NATS_URL": nats_server.url, "GYMFORGE_DATA_DIR": str(data_dir),
           "GYMFORGE_TEACHER_PORT": str(free_port())}
    run = await gymforge("run", "--topics", "3", "--attempts", "2", "--idle-seconds", "4", env=env, timeout=420)
    assert run.code == 0, run.err[-3000:]
    stored = stored_tasks(data_dir / "gymforge.db")
    if not stored:
        # Seen on a heavily loaded host: `run` exited 0 early with nothing validated. Resume once from
        # where the durable consumers stopped (the documented recovery), and say so in the report.
        warnings.warn(f"`gymforge run` validated no task; resuming with --no-seed:\n{run.out}", stacklevel=1)
        run = await gymforge("run", "--no-seed", "--idle-seconds", "4", env=env, timeout=420)
        assert run.code == 0, run.err[-3000:]
        stored = stored_tasks(data_dir / "gymforge.db")
    assert stored, f"the pipeline validated no task:\n{run.out}\n{run.err[-3000:]}"
    check_training_data(data_dir, run.out, attempts=2 * len(stored))

    exp = await gymforge("export", "mlgym", "--out", str(out), env=env, timeout=120)
    assert exp.code == 0, exp.err[-3000:]
    assert f"exported {len(stored)} task(s)" in exp.out
    assert sorted(p.stem for p in (out / "configs" / "tasks").glob("*.yaml")) == sorted(stored)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "staging files left behind"

    readme = (out / "README.md").read_text()
    assert "GF_HIDDEN_DIR" in readme and "container_mounts" in readme
    configs = {}
    for task_id, row in stored.items():
        assert f"`{task_id}`" in readme and row["metric"] in readme
        configs[task_id] = check_task(out, task_id, row)

    work = tmp_path / "rerun"
    work.mkdir()
    results = await asyncio.gather(*(rerun_baseline(out, cfg, ds, work) for cfg, ds in configs.values()))
    for (task_id, (cfg, _)), metrics in zip(configs.items(), results, strict=True):
        metric = cfg["gymforge"]["metric"]
        recorded = stored[task_id]["baseline_score"]
        assert math.isclose(metrics[metric], recorded, rel_tol=1e-6, abs_tol=1e-12), (task_id, metrics, recorded)
        assert metrics == pytest.approx(cfg["gymforge"]["baseline_metrics"], rel=1e-6)


def check_training_data(data_dir: Path, run_out: str, attempts: int) -> None:
    """Every attempt has a trajectory; the accepted ones are in an SFT JSONL that `datasets` loads."""
    db = sqlite3.connect(data_dir / "gymforge.db")
    try:
        statuses = [r[0] for r in db.execute("SELECT status FROM trajectories")]
        graded = db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'graded'").fetchone()[0]
    finally:
        db.close()
    assert len(statuses) == attempts and set(statuses) <= {"accepted", "rejected"}, statuses
    accepted = statuses.count("accepted")
    assert accepted >= 1 and graded >= 1, run_out
    (sft,) = re.findall(r"SFT JSONL \((\d+) examples\) (\S+)", run_out)
    assert int(sft[0]) == accepted
    rows = datasets.load_dataset("json", data_files=sft[1], split="train")
    assert len(rows) == accepted
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles[:2] == ["system", "user"] and roles[-1] == "assistant"
        assert all(a != b for a, b in itertools.pairwise(roles[1:])), roles
        assert row["metadata"]["score"] is not None and row["metadata"]["gain"] > 0


async def test_export_mlgym_without_a_store_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    env = {"GYMFORGE_NATS_URL": "nats://127.0.0.1:1", "GYMFORGE_DATA_DIR": str(data_dir)}
    r = await gymforge("export", "mlgym", "--out", str(tmp_path / "out"), env=env)
    assert r.code == 2, r
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("gymforge: no store at "), r.err
    assert "Traceback" not in r.err and not (tmp_path / "out").exists()


def test_export_mlgym_bad_arguments_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    modules = cli._modules
    if export_mlgym not in modules():
        monkeypatch.setattr(cli, "_modules", lambda: [*modules(), export_mlgym])
    monkeypatch.setattr(cli.logs, "configure", lambda *a, **k: None)  # no global logging set-up in-process
    monkeypatch.setenv("GYMFORGE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("GYMFORGE_NATS_URL", "nats://127.0.0.1:1")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    cases = [
        ["export", "mlgym"],  # no --out
        ["export"],  # no format
        ["export", "mlgym", "--out", str(a_file)],
        ["export", "mlgym", "--out", str(full)],  # not empty, no --force
    ]
    for args in cases:
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("gymforge: "), (args, err)


def test_export_subparsers_are_shared_with_sibling_formats() -> None:
    parser = cli.Parser(prog="gymforge")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=cli.Parser)
    export_mlgym.register(sub)
    siblings = export_mlgym.export_subparsers(sub)
    assert export_mlgym.export_subparsers(sub) is siblings
    siblings.add_parser("sft").set_defaults(func="sft")
    assert parser.parse_args(["export", "sft"]).func == "sft"
    args = parser.parse_args(["export", "mlgym", "--out", "x", "--task", "a", "--task", "b"])
    assert args.out == Path("x") and args.task_ids == ["a", "b"] and callable(args.func)
    with pytest.raises(UserError):
        parser.parse_args(["export", "nope"])


def test_description_survives_mlgym_format() -> None:
    text = 'Print {"rmse": 1.0} as JSON.\n{dataset_docs}\nUse a dict {} or {x}.'
    out = export_mlgym.mlgym_description(text)
    assert out.format(dataset_docs="DOCS") == text.replace("{dataset_docs}", "DOCS")
