"""The `torch` task runtime, for real: the coder is told exactly the profile's packages, the offline teacher
writes PyTorch baselines (CNN, bag of embeddings, MLP/GRU forecaster) that train and score on CPU, its edits
beat them, the sandbox caps torch's threads, and a torch task goes from topic to accepted trajectory through
NATS, the offline teacher over HTTP and the bwrap sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.coder import coder_system
from agents.roles import ROLES
from agents.runtime import AgentRunner, Supervisor
from bus import Bus, EmbeddedNats, make_envelope
from domain.payloads import TopicRequested
from gymforge.app import build_agent
from sandbox import Limits, get_backend
from sandbox.image import build_args
from sandbox.runtimes import (
    RUNTIMES,
    Package,
    Runtime,
    build_packages,
    get_runtime,
    image_tag,
    missing,
    unavailable,
)
from sandbox.settings import SandboxSettings
from teacher.bundles import candidate_edits, write_bundle
from teacher.bundles.edits import module_constants
from teacher.bundles.specs import SPECS
from teacher.policy import TeacherConfig, write_task
from teacher.server import TeacherServer
from tests.test_bundles import (
    Run,
    Task,
    better,
    dataset,
    parallel,
    run_bundle,
    run_edits,
    score,
    write_raw,
)
from tests.test_runtime import wait_until_count
from tests.test_tasks_pipeline import rows, settings_for

TORCH_TYPES = tuple(t for t, spec in SPECS.items() if spec.torch_variants)
pytestmark = pytest.mark.timeout(900)


# --- the profile: settings, prompt, image ------------------------------------------------------------


def test_the_runtime_is_a_setting_and_the_default_is_sklearn() -> None:
    assert SandboxSettings().runtime == "sklearn"
    torch_settings = SandboxSettings(task_runtime="torch")
    assert torch_settings.task_runtime.modules[-1] == "torch"
    assert set(RUNTIMES["torch"].modules) - set(RUNTIMES["sklearn"].modules) == {"torch"}
    assert (SandboxSettings().docker_image, torch_settings.docker_image) == (
        "gymforge-sandbox:latest", "gymforge-sandbox:torch")
    assert SandboxSettings(task_runtime="torch", image="mine:1").docker_image == "mine:1"
    with pytest.raises(ValueError, match="unknown task runtime 'jax'"):
        get_runtime("jax")


@pytest.mark.parametrize("name", ["sklearn", "torch"])
def test_the_coder_prompt_lists_exactly_the_profile_s_packages(name: str) -> None:
    prompt = coder_system(get_runtime(name))
    listed = [line[2:].split(" ")[0].rstrip(":") for line in prompt.splitlines() if line.startswith("- ")]
    assert listed == list(get_runtime(name).modules)
    assert f'task runtime "{name}"' in prompt and "Import nothing else." in prompt
    assert ("torch" in prompt) == (name == "torch")


def test_missing_packages_are_named_and_stop_the_roles_that_run_task_code() -> None:
    assert missing(get_runtime("torch")) == []  # setup installs torch==2.13.0
    assert unavailable(get_runtime("torch"), "bwrap") is None
    absent = Runtime("x", (Package("numpy", "numpy"), Package("no-such-dist", "no_such_module_gf")), "")
    assert missing(absent) == ["no-such-dist"]
    why = unavailable(absent, "bwrap")
    assert why is not None and "task_runtime x needs no-such-dist" in why and "\n" not in why
    assert unavailable(absent, "docker") is None  # the image carries its own packages
    assert {name for name, cls in ROLES.items() if cls.runs_task_code} == {"debugger", "solver"}


def test_each_profile_has_its_own_image_with_its_packages_pinned() -> None:
    sklearn_args, torch_args = build_args(get_runtime("sklearn")), build_args(get_runtime("torch"), pip_args="-q")
    assert "torch" not in sklearn_args["PACKAGES"] and sklearn_args["RUNTIME"] == "sklearn"
    assert "torch==2.13.0" in torch_args["PACKAGES"].split()  # no local label: any build of that version
    assert torch_args["PIP_ARGS"] == "-q" and torch_args["RUNTIME"] == "torch"
    assert build_packages(get_runtime("sklearn")).startswith("numpy==")
    assert image_tag(get_runtime("torch")) == "gymforge-sandbox:torch"
    dockerfile = (Path(__file__).parents[1] / "sandbox" / "Dockerfile").read_text()
    assert "$PIP_ARGS $PACKAGES" in dockerfile and "ARG RUNTIME" in dockerfile


def test_the_offline_teacher_writes_torch_only_when_the_runtime_has_it() -> None:
    card, splits = dataset("image_classification")
    card = {**card, "split_sizes": {k: len(v) for k, v in splits.items()}}

    def reply(runtime: str | None) -> str:
        params = {"task_id": "t-prompt", "task_type": card["task_type"]} | ({"runtime": runtime} if runtime else {})
        prompt = f"```json\n{json.dumps(card)}\n```\n```json\n{json.dumps(params)}\n```"
        return write_task(prompt, TeacherConfig(defect_rate=0.0))

    assert "import torch" in reply("torch") and 'FRAMEWORK = "torch"' in reply("torch")
    assert "import torch" not in reply("sklearn") and "import torch" not in reply(None)
    tabular, tabular_splits = dataset("tabular_classification")
    draft = write_bundle({**tabular, "split_sizes": {k: len(v) for k, v in tabular_splits.items()}},
                         task_id="t", runtime="torch")
    assert "import torch" not in draft.files["baseline.py"]  # no torch baseline for tabular data: sklearn's


def test_rendered_torch_code_is_ruff_clean(tmp_path: Path) -> None:
    for task_type in TORCH_TYPES:
        for i in range(4):  # several task ids, so that every PyTorch variant is rendered
            draft = write_bundle(dataset(task_type)[0], task_id=f"lint-{i}", runtime="torch")
            (tmp_path / f"{task_type}_{i}.py").write_text(draft.files["baseline.py"])
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ruff")), "check", "--isolated", "--line-length", "110",
         "--select", "E,F,W,I,B,UP,SIM", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the PyTorch baselines, run for real -------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Task, Run]]:
    root = tmp_path_factory.mktemp("torch-bundles")

    def build(task_type: str) -> tuple[Task, Run]:
        raw, card = write_raw(root, *dataset(task_type))
        task = Task(card, write_bundle(card, task_id=f"{task_type}-torch", runtime="torch"), raw, root / task_type)
        return task, run_bundle(task.draft.files, task.raw, task.root)

    return dict(zip(TORCH_TYPES, parallel([lambda t=t: build(t) for t in TORCH_TYPES]), strict=True))


@pytest.mark.parametrize("task_type", TORCH_TYPES)
def test_a_torch_baseline_trains_and_scores(torch_tasks: dict[str, tuple[Task, Run]], task_type: str) -> None:
    task, run = torch_tasks[task_type]
    baseline = task.draft.files["baseline.py"]
    assert "import torch" in baseline and module_constants(baseline)["FRAMEWORK"] == "torch"
    assert task.draft.baseline_model in {v.model for v in SPECS[task_type].torch_variants}
    assert "PyTorch" in task.draft.description
    value = score(run, task_type)
    assert (0.0 < value < 1.0) if task_type != "time_series_forecasting" else value > 0


@pytest.fixture(scope="module")
def torch_edit_outcomes(torch_tasks: dict[str, tuple[Task, Run]],
                        tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    return run_edits(torch_tasks, tmp_path_factory.mktemp("torch-edits"))


@pytest.mark.parametrize("task_type", TORCH_TYPES)
def test_torch_edits_tune_training_and_the_best_beats_the_baseline(
        torch_tasks: dict[str, tuple[Task, Run]], torch_edit_outcomes: dict[str, list], task_type: str) -> None:
    baseline = score(torch_tasks[task_type][1], task_type)
    outcomes = torch_edit_outcomes[task_type]
    assert len(outcomes) >= 3
    tuned = set().union(*(edit.settings for edit, _, _ in outcomes))
    assert {"EPOCHS", "PATIENCE"} <= tuned and tuned & {"LEARNING_RATE", "HIDDEN", "EMBED_DIM", "CHANNELS"}
    scores = []
    for edit, edited, run in outcomes:
        assert {k: module_constants(edited)[k] for k in edit.settings} == edit.settings, edit.command
        scores.append(score(run, task_type))
    best = max(scores) if SPECS[task_type].direction == "maximize" else min(scores)
    assert better(best, baseline, task_type), (baseline, scores)


def test_sklearn_ideas_never_land_on_a_torch_baseline_and_vice_versa() -> None:
    for task_type in TORCH_TYPES:
        card, splits = dataset(task_type)
        card = {**card, "split_sizes": {k: len(v) for k, v in splits.items()}}
        torch_files = write_bundle(card, task_id="x", runtime="torch").files
        sklearn_files = write_bundle(card, task_id="x").files
        [models] = [line for line in torch_files["baseline.py"].splitlines() if line.startswith("# One of ")]
        for edit in candidate_edits(torch_files, task_type):
            assert f'"{edit.settings.get("MODEL", "")}"' in models or "MODEL" not in edit.settings, edit.settings
        for edit in candidate_edits(sklearn_files, task_type):
            assert not {"EPOCHS", "PATIENCE", "FRAMEWORK"} & edit.settings.keys(), edit.settings


# --- inside the sandbox ------------------------------------------------------------------------------


@pytest.mark.parametrize("cpus", [1.0, 2.0])
async def test_torch_threads_follow_the_sandbox_cpu_limit(tmp_path: Path, cpus: float) -> None:
    async with await get_backend("bwrap").open(tmp_path, Limits(cpus=cpus)) as session:
        r = await session.exec(["python", "-c", "import torch; print(torch.get_num_threads(), "
                                "torch.get_num_interop_threads(), torch.cuda.is_available())"], timeout=120)
    assert r.exit_code == 0, r.stderr
    threads, _, cuda = r.stdout.split()
    assert (int(threads), cuda) == (int(cpus), "False")


async def test_with_thread_caps_off_torch_takes_a_thread_per_host_core(tmp_path: Path) -> None:
    limits = SandboxSettings(thread_caps=False).limits()
    async with await get_backend("bwrap").open(tmp_path, limits) as session:
        r = await session.exec(["python", "-c", "import os, torch; print(torch.get_num_threads(), "
                                "os.environ.get('OMP_NUM_THREADS', 'unset'))"], timeout=120)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(os.cpu_count()), "unset"]


@pytest.mark.timeout(900)
async def test_a_torch_task_goes_from_topic_to_accepted_trajectory_in_the_sandbox(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path) -> None:
    async with TeacherServer(config=TeacherConfig(defect_rate=1.0)) as teacher:
        s = settings_for(nats_server, data_dir, teacher.port, task_runtime="torch", attempts=1)
        roles = ("proposer", "verifier", "coder", "debugger", "solver", "filter")
        sup = Supervisor([AgentRunner(build_agent(r, bus, s)) for r in roles], grace_s=2)
        running = asyncio.create_task(sup.run())
        try:
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain="computer vision", count=1),
                                            producer="test"))
            await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories WHERE status != 'completed'", 1,
                                   timeout=780)
        finally:
            sup.request_stop()
            await running
    [task] = await rows(sink, "SELECT * FROM tasks")
    assert task["status"] == "graded" and task["task_type"] == "image_classification"
    bundle = json.loads(task["bundle"])
    assert "import torch" in bundle["files"]["baseline.py"] and task["revision"] >= 1  # a planted defect fixed
    [traj_row] = await rows(sink, "SELECT status, score, traj FROM trajectories")
    assert traj_row["status"] == "accepted", traj_row
    traj = json.loads(traj_row["traj"])
    actions = [step["action"] for step in traj["trajectory"]]
    assert any(a.startswith("sed -i") and ("EPOCHS" in a or "AUGMENT_SHIFT" in a) for a in actions), actions
    assert traj_row["score"] > task["baseline_score"]
