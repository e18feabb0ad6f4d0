"""MLGym scores what `gymforge export mlgym` writes: drafted bundles of several task types (one needing
statsmodels, beyond MLGym's generic environment), validated into a real store by the real sink, their raw
data in the local dataset cache only, exported by the real CLI with NATS unreachable; then each exported
evaluate.py run the way MLGym runs it (a workspace of the starter code copied flat, the answers mounted at
/answers through the real bwrap sandbox, GF_HIDDEN_DIR unset, stdout and stderr parsed together)."""

from __future__ import annotations

import asyncio
import json
import runpy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from agents.runtime import AgentContext, AgentRunner, Supervisor
from agents.sink import SinkAgent
from bus import Bus, BusSettings, EmbeddedNats
from bus.codec import make_envelope
from domain.payloads import PAYLOADS, TaskValidated
from domain.tasks import DataRef, TaskBundle
from gymforge.mlgym.records import TaskUnusable
from gymforge.mlgym.requirements import task_requirements
from gymforge.mlgym.scoring import mlgym_metrics
from sandbox import ExecResult, Limits, Mount, get_backend
from teacher.bundles import write_bundle
from tests.helpers.cli import Result, gymforge
from tests.test_bundles import dataset, run_bundle, write_raw
from tests.test_runtime import wait_until_count

pytestmark = pytest.mark.timeout(900)
UNREACHABLE = "nats://127.0.0.1:1"
NO_NATS = {"GYMFORGE_EMBEDDED_NATS": "false"}
# task id -> (task type, whether the stored record keeps every metric, as records do since the ledger had them)
TASKS = {
    "mlg-tabcls": ("tabular_classification", True),
    "mlg-forecast": ("time_series_forecasting", True),  # its baseline imports statsmodels
    "mlg-counts": ("count_regression", False),  # an older record: only the task's metric
}
OLD_STYLE = "mlg-oldeval"  # an evaluate.py that knows only GF_HIDDEN_DIR (as templates did before)


@dataclass
class Exported:
    out: Path
    data_dir: Path
    result: Result
    metrics: dict[str, dict[str, float]]  # the baselines' metrics as the debugger recorded them


def old_style(files: dict[str, str]) -> dict[str, str]:
    source = files["evaluate.py"]
    start = source.index("def read_answers()")
    end = source.index("def read_predictions")
    old = ('def read_answers() -> pd.DataFrame:\n    hidden_dir = os.environ.get("GF_HIDDEN_DIR")\n'
           '    if not hidden_dir:\n        print("GF_HIDDEN_DIR is not set", file=sys.stderr)\n'
           '        sys.exit(2)\n    return pd.read_csv(Path(hidden_dir) / "answers.csv")\n\n\n')
    return {**files, "evaluate.py": source[:start] + old + source[end:]}


def draft_task(task_id: str, task_type: str, root: Path, cache: Path) -> tuple[TaskBundle, dict[str, float]]:
    """A drafted bundle, its raw data in the dataset cache (only there) and its baseline's metrics."""
    card, splits = dataset(task_type)
    raw, card = write_raw(root / task_id, card, splits)
    draft = write_bundle(card, task_id=task_id)
    files = old_style(draft.files) if task_id == OLD_STYLE else draft.files
    run = run_bundle(files, raw, root / task_id / "run")
    assert run.ok and run.metrics, run.error
    key = f"cache-{task_id}"
    shutil.copytree(raw, cache / key)
    (cache / key / ".complete").write_text("")
    ref = DataRef(key=key, splits={s: f"datasets/{key}/{s}.parquet" for s in splits})
    fields = {**draft.bundle_fields(), "files": files}
    return TaskBundle(task_id=task_id, data=ref, **fields), run.metrics


async def validate_into_store(data_dir: Path, tasks: list[tuple[TaskBundle, dict[str, float], bool]]) -> None:
    """Publish each task.validated on a real nats-server; the real sink writes the store. Then the server stops."""
    async with EmbeddedNats(data_dir.parent / "js", port=0) as server:
        bus = await Bus.connect(BusSettings(url=server.url), types=PAYLOADS)
        ctx = AgentContext(bus=bus, data_dir=data_dir)
        sup = Supervisor([AgentRunner(SinkAgent(ctx, db_path=data_dir / "gymforge.db"))])
        sink = asyncio.create_task(sup.run())
        try:
            for b, metrics, full in tasks:
                kept = metrics if full else {b.metric: metrics[b.metric]}
                await bus.publish(make_envelope("task.validated", TaskValidated(
                    bundle=b, revision=0, baseline_score=metrics[b.metric], baseline_metrics=kept,
                    runtime_s=1.0, rounds=1), producer="debugger"))
            await wait_until_count(data_dir / "gymforge.db", "SELECT COUNT(*) FROM tasks WHERE status = 'validated'",
                                   len(tasks), timeout=60)
        finally:
            sup.request_stop()
            await sink
            await bus.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("mlgym-scoring")
    data_dir = root / "data"
    cache = data_dir / "cache" / "datasets"
    cache.mkdir(parents=True)
    drafted = [(*draft_task(tid, ttype, root, cache), full) for tid, (ttype, full) in TASKS.items()]
    drafted.append((*draft_task(OLD_STYLE, "tabular_regression", root, cache), True))
    asyncio.run(validate_into_store(data_dir, drafted))
    out = root / "export"
    result = asyncio.run(gymforge("export", "mlgym", "--out", str(out), url=UNREACHABLE, data_dir=data_dir,
                                  env=NO_NATS, timeout=600))
    return Exported(out, data_dir, result, {b.task_id: m for b, m, _ in drafted})


def task_config(out: Path, task_id: str) -> dict[str, Any]:
    return yaml.safe_load((out / "configs" / "tasks" / f"{task_id}.yaml").read_text())


async def mlgym_workspace(out: Path, cfg: dict[str, Any], ws: Path) -> None:
    """What MLGym does with a task: the starter code flat in the workspace, the dataset as data/."""
    ws.mkdir(parents=True)
    for p in cfg["starter_code"]:
        shutil.copyfile(out / p, ws / Path(p).name)
    ds = yaml.safe_load((out / "configs" / cfg["dataset_configs"][0]).read_text())
    shutil.copytree(out / ds["data_path"], ws / "data")


async def mlgym_evaluate(ws: Path, answers: Path | None, *, baseline: bool = False,
                         env: dict[str, str] | None = None, submission: str = "submission.csv") -> ExecResult:
    """`python evaluate.py --submission_file …` in the workspace as MLGym runs it: no GF_HIDDEN_DIR, the
    answers (when given) mounted at /answers."""
    mounts = [Mount(answers, "/answers", read_only=True)] if answers else []
    session = await get_backend().open(ws, Limits(wall_time_s=600))
    try:
        if baseline:
            r = await session.exec("python baseline.py", timeout=600)
            assert r.ok, r.stderr[-2000:]
        return await session.exec(f"python evaluate.py --submission_file {submission}", timeout=120,
                                  env=env, mounts=mounts)
    finally:
        await session.close()


def combined_json(r: ExecResult) -> Any:
    return json.loads(r.stdout + r.stderr)  # MLGym's CSVSubmissionTasks: the whole output, stderr merged in


def test_export_needs_no_nats_when_the_cache_holds_the_datasets(exported: Exported) -> None:
    r = exported.result
    assert r.code == 1, r  # the old-style task is skipped (below); the others exported
    assert f"exported {len(TASKS)} task(s)" in r.out and "skipped 1" in r.out, r
    assert "Traceback" not in r.err and "nats" not in r.err.lower(), r.err
    assert sorted(p.stem for p in (exported.out / "configs" / "tasks").glob("*.yaml")) == sorted(TASKS)


def test_an_evaluate_that_mlgym_cannot_run_is_refused_with_its_reason(exported: Exported) -> None:
    (line,) = [x for x in exported.result.err.splitlines() if x.startswith(f"skipped {OLD_STYLE}:")]
    assert "/answers" in line and "GF_HIDDEN_DIR" in line and "exit code 2" in line, line
    assert not (exported.out / "data" / OLD_STYLE).exists()


def test_configs_carry_every_metric_requirements_memory_and_tasks_entries(exported: Exported) -> None:
    out = exported.out
    entries = runpy.run_path(str(out / "mlgym_tasks.py"))["GYMFORGE_TASKS"]
    assert sorted(entries) == sorted(TASKS)
    for task_id in TASKS:
        cfg = task_config(out, task_id)
        metrics = exported.metrics[task_id]
        (scores,) = cfg["baseline_scores"]
        assert scores == pytest.approx(metrics, rel=1e-9) and set(scores) == set(metrics) and len(scores) >= 2
        assert all(type(v) is float for v in scores.values())
        assert cfg["memory_path"] == f"data/{task_id}/memory.json"
        assert entries[task_id] == {"name": cfg["name"], "shortname": cfg["name"],
                                    "priority_metric": cfg["gymforge"]["metric"],
                                    "metric_direction": cfg["gymforge"]["direction"]}
        assert cfg["gymforge"]["answers_mount"] == "/answers"
    forecast = task_config(out, "mlg-forecast")
    assert forecast["use_generic_conda"] is False
    assert forecast["requirements_path"] == "data/mlg-forecast/requirements.txt"
    reqs = (out / forecast["requirements_path"]).read_text().split()
    assert any(r.startswith("statsmodels==") for r in reqs) and any(r.startswith("pandas==") for r in reqs), reqs
    for task_id in ("mlg-tabcls", "mlg-counts"):  # sklearn, numpy, pandas: MLGym's generic environment has them
        cfg = task_config(out, task_id)
        assert cfg["use_generic_conda"] is True and "requirements_path" not in cfg
        assert not (out / "data" / task_id / "requirements.txt").exists()
    readme = (out / "README.md").read_text()
    assert "container_mounts" in readme and "/answers" in readme and "mlgym_tasks.py" in readme


@pytest.mark.parametrize("task_id", sorted(TASKS))
async def test_mlgym_scores_the_exported_baseline(exported: Exported, task_id: str, tmp_path: Path) -> None:
    out = exported.out
    cfg = task_config(out, task_id)
    ws = tmp_path / "workspace"
    await mlgym_workspace(out, cfg, ws)
    answers = out / "data" / task_id / "answers"
    # Warnings on at every level: the output must still be the one JSON object alone.
    r = await mlgym_evaluate(ws, answers, baseline=True, env={"PYTHONWARNINGS": "always", "PYTHONDEVMODE": "1"})
    assert r.ok and r.stderr == "", r
    assert combined_json(r) == pytest.approx(cfg["baseline_scores"][0], rel=1e-6)

    # A malformed submission is refused, never scored: MLGym cannot read a score from it.
    frame = pd.read_csv(ws / "submission.csv")
    frame.iloc[:-1].to_csv(ws / "short.csv", index=False)
    bad = await mlgym_evaluate(ws, answers, submission="short.csv")
    assert bad.exit_code == 1 and "invalid submission" in bad.stderr and bad.stdout == "", bad
    with pytest.raises(json.JSONDecodeError):
        combined_json(bad)

    # No answers mounted and no GF_HIDDEN_DIR: exit 2, nothing on stdout.
    none = await mlgym_evaluate(ws, None)
    assert none.exit_code == 2 and none.stdout == "" and "/answers" in none.stderr, none


async def test_gymforge_sandbox_still_scores_with_gf_hidden_dir(exported: Exported, tmp_path: Path) -> None:
    """The hidden dir gymforge mounts wins over /answers: answers at both places that disagree."""
    out = exported.out
    cfg = task_config(out, "mlg-tabcls")
    ws = tmp_path / "workspace"
    await mlgym_workspace(out, cfg, ws)
    answers = out / "data" / "mlg-tabcls" / "answers"
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    truth = pd.read_csv(answers / "answers.csv")
    label = [c for c in truth.columns if c != "id"][0]
    truth.assign(**{label: truth[label].sample(frac=1, random_state=0).to_numpy()}).to_csv(wrong / "answers.csv",
                                                                                          index=False)
    shutil.copyfile(answers / "answers.csv", ws / "perfect.csv")
    session = await get_backend().open(ws, Limits(wall_time_s=120))
    try:
        r = await session.exec("python evaluate.py --submission_file perfect.csv", timeout=120,
                               env={"GF_HIDDEN_DIR": "/gf/hidden"},
                               mounts=[Mount(answers, "/gf/hidden"), Mount(wrong, "/answers")])
    finally:
        await session.close()
    assert r.ok, r
    assert combined_json(r)["accuracy"] == 1.0


@pytest.mark.parametrize("task_id", ["mlg-forecast", "mlg-counts"])
async def test_predictions_that_overflow_the_metric_are_refused_in_one_line(exported: Exported, task_id: str,
                                                                           tmp_path: Path) -> None:
    """Finite predictions whose squared errors overflow: numpy warns (RuntimeWarning) and the metric is inf,
    which json.loads would take as a score. evaluate.py refuses it, and its stderr is that one reason alone."""
    out = exported.out
    cfg = task_config(out, task_id)
    ws = tmp_path / "workspace"
    await mlgym_workspace(out, cfg, ws)
    answers = out / "data" / task_id / "answers"
    truth = pd.read_csv(answers / "answers.csv")
    label = [c for c in truth.columns if c != "id"][0]
    truth.assign(**{label: 1e200}).to_csv(ws / "huge.csv", index=False)
    r = await mlgym_evaluate(ws, answers, submission="huge.csv")
    assert r.exit_code == 1 and r.stdout == "", r
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("invalid submission: the metric(s)") and "not finite" in line, r.stderr


def result(stdout: str, stderr: str = "", code: int = 0) -> ExecResult:
    return ExecResult(exit_code=code, stdout=stdout, stderr=stderr, duration_s=0.1, timed_out=False,
                      oom_killed=False, truncated=False)


def test_the_export_reads_evaluate_output_as_mlgym_does() -> None:
    assert mlgym_metrics(result('{"rmse": 1.5, "mae": 1.0}\n'), "rmse") == {"rmse": 1.5, "mae": 1.0}
    refused = {
        "a warning on stderr": result('{"rmse": 1.5}\n', "x.py:3: FutureWarning: soon\n"),
        "a line before the JSON": result('Scored 10 rows\n{"rmse": 1.5}\n'),
        "two objects": result('{"rmse": 1.5}\n{"rmse": 1.6}\n'),
        "infinity": result('{"rmse": Infinity}\n'),
        "no task metric": result('{"mae": 1.0}\n'),
        "a failure": result("", "invalid submission: 3 rows, expected 4\n", code=1),
    }
    for what, r in refused.items():
        with pytest.raises(TaskUnusable):
            mlgym_metrics(r, "rmse")
            pytest.fail(f"read as a score: {what}")


def test_requirements_follow_the_imports_beyond_mlgyms_generic_environment() -> None:
    generic = {"baseline.py": "import numpy as np\nfrom sklearn.linear_model import Ridge\nimport torch.nn\n",
               "evaluate.py": "import json, os\nimport pandas as pd\nfrom . import x\nimport helpers\n",
               "helpers.py": "from __future__ import annotations\n", "data/README": "import nothing"}
    assert task_requirements(generic) is None
    needs = {**generic, "baseline.py": "from statsmodels.tsa.ar_model import AutoReg\nimport lightgbm\n"}
    lines = (task_requirements(needs) or "").split()
    assert [line.split("==")[0] for line in lines] == ["lightgbm", "pandas", "statsmodels"]
    assert lines[2].startswith("statsmodels==")
    with pytest.raises(TaskUnusable, match="baseline.py does not parse"):
        task_requirements({"baseline.py": "import (\n"})


def test_drafted_torch_tasks_fit_the_generic_environment_and_statsmodels_ones_do_not() -> None:
    """MLGym's generic environment has torch (and scikit-learn, pandas, ...), not statsmodels."""
    for task_type in ("image_classification", "text_classification", "time_series_forecasting"):
        card, splits = dataset(task_type)
        card = {**card, "split_sizes": {s: len(f) for s, f in splits.items()}}
        torch_files = write_bundle(card, task_id=f"t-{task_type}", runtime="torch").files
        assert "import torch" in torch_files["baseline.py"]
        assert task_requirements(torch_files) is None, task_type
    card, splits = dataset("time_series_forecasting")
    card = {**card, "split_sizes": {s: len(f) for s, f in splits.items()}}
    sklearn_files = write_bundle(card, task_id="t-forecast").files
    assert "statsmodels==" in (task_requirements(sklearn_files) or "")
