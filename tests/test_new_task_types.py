"""time_series_classification and count_regression end to end, on real data: the strict `.ts` reader on
the UCR files aeon ships, the built-in datasets, the verifier's refusal of labels that are not counts, the
offline teacher's bundles run in the bwrap sandbox (prepare, baseline, evaluate, the solver's edits),
evaluate.py's refusals, and the Hub mirror's listing of the new datasets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import aiohttp
import datasets
import numpy as np
import pandas as pd
import pytest

from agents.taskrun import Workspace, open_workspace
from catalog import LocalCatalog, check
from catalog.builtin import BUILTIN, build_builtin
from catalog.builtin_sources import package_file
from catalog.convert import standardize
from catalog.models import DatasetProfile, DatasetUnavailable
from catalog.ts_format import TsFormatError, parse_ts, read_ts
from domain.tasks import DataRef, TaskBundle
from hubmirror.build import build_mirror, builtin_tables, source_table
from hubmirror.index import parquet_path
from hubmirror.server import MirrorServer
from hubmirror.sources import rdatasets_sources
from sandbox import get_backend
from teacher.bundles import candidate_edits, write_bundle

pytestmark = pytest.mark.timeout(900)
NEW_TYPES = ("time_series_classification", "count_regression")
NEW_BUILTINS = [spec.name for spec in BUILTIN if spec.task_type in NEW_TYPES]

# --- the .ts reader --------------------------------------------------------------------------------------


def test_reader_parses_the_shipped_ucr_files() -> None:
    gun = read_ts(package_file("aeon", "datasets/data/GunPoint/GunPoint_TRAIN.ts"))
    assert gun.problem == "GunPoint" and gun.class_labels == ("1", "2") and gun.dimensions == 1
    assert len(gun.series) == len(gun.labels) == 50 and gun.lengths == {150}
    assert set(gun.labels) == {"1", "2"} and "Gun-Draw" in gun.comment
    assert all(np.isfinite(case).all() for case in gun.series)
    motions = read_ts(package_file("aeon", "datasets/data/BasicMotions/BasicMotions_TEST.ts"))
    assert motions.dimensions == 6 and {case.shape for case in motions.series} == {(6, 100)}
    assert set(motions.labels) == {"Standing", "Running", "Walking", "Badminton"}


HEADER = "@problemName Toy\n@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize(("text", "reason"), [
    (HEADER.replace("@data\n", ""), "no @data line"),
    (HEADER, "no cases after @data"),
    (HEADER + "1,2,3:c\n", "class label 'c' is not one of"),
    (HEADER + "1,2,3:4,5,6:a\n", "2 dimension(s) before the label, expected 1"),
    (HEADER + "1,x,3:a\n", "'x' is not a number"),
    (HEADER + "1,?,3:a\n", "missing value '?' but @missing is not true"),
    (HEADER + "1,2,3:a\n1,2:b\n", "@equalLength true but the series have 2 lengths"),
    (HEADER + "1,2:a\n1,2:b\n", "@seriesLength 3 but the series have 2 values"),
    (HEADER + "1,2,3:\n", "no class label"),
    (HEADER + "1,inf,3:a\n", "not a finite number"),
    ("@problemName T\n@targetLabel true\n@data\n1,2:0.5\n", "regression"),
    ("@problemName T\n@timeStamps true\n@classLabel true a b\n@data\n(0,1):a\n", "time-stamped"),
    ("@problemName T\n@colour blue\n@data\n", "unknown header @colour"),
    ("@problemName T\n@problemName U\n@data\n", "@problemname is given twice"),
    ("@univariate maybe\n@classLabel true a b\n@data\n1:a\n", "must be true or false"),
    ("@univariate false\n@classLabel true a b\n@data\n1:2:a\n", "@univariate false needs @dimensions"),
    ("@classLabel false\n@data\n1,2:a\n", "@classLabel must be `true` followed by at least two"),
    ("1,2,3:a\n", "expected a @key header line"),
], ids=lambda value: value[:24] if isinstance(value, str) else value)
def test_reader_refuses_malformed_files_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(TsFormatError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_ts(text, source="toy.ts")


def test_reader_takes_declared_missing_values_and_multivariate_cases() -> None:
    data = parse_ts("@missing true\n@univariate false\n@dimensions 2\n@classLabel true a b\n@data\n"
                    "1,?,3:4,5,6:a\n7,8,9:1,2,3:b\n")
    assert data.dimensions == 2 and data.labels == ["a", "b"]
    assert math.isnan(data.series[0][0, 1]) and data.series[1].tolist() == [[7, 8, 9], [1, 2, 3]]


# --- the built-in datasets and the verifier's checks ----------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> LocalCatalog:
    root = tmp_path_factory.mktemp("catalog")
    build_builtin(root, names=NEW_BUILTINS)
    return LocalCatalog(root)


def test_new_builtins_materialise_with_their_conventions(catalog: LocalCatalog, tmp_path: Path) -> None:
    assert len(NEW_BUILTINS) == 6 and catalog.ids() == sorted(NEW_BUILTINS)
    for name in NEW_BUILTINS:
        profile = catalog.materialize(name, tmp_path / name)
        assert check(profile, [], None, profile.task_type) == [], name
        train = pd.read_parquet(tmp_path / name / "train.parquet")
        assert profile.split_sizes["train"] >= 150 and profile.split_sizes["test"] >= 40
        if profile.task_type == "time_series_classification":
            assert profile.features == {"series": "list<float>", "label": "int"}
            assert len({len(s) for s in train["series"]}) == 1 and len(profile.class_names["label"]) >= 2
        else:
            label = train[profile.label_column]
            assert label.dtype.kind == "i" and (label >= 0).all() and label.nunique() > 3


def count_profile(label_type: str, values: list[Any], **extra: Any) -> DatasetProfile:
    return DatasetProfile(id="toy", source="hub", features={"x": "float", "y": label_type},
                          split_sizes={"train": 400, "test": 100}, label_column="y",
                          sample_rows=[{"x": 1.0, "y": v} for v in values], **extra)


@pytest.mark.parametrize(("label_type", "values", "extra", "reason"), [
    ("float", [1.0, 2.5], {}, "holds 2.5: count_regression needs a non-negative integer count"),
    ("int", [3, -1], {}, "holds -1: count_regression needs a non-negative integer count"),
    ("float", [], {}, "float with no values seen"),
    ("str", ["a"], {}, "needs a numeric target"),
    ("int", [0, 1], {"class_names": {"y": ["no", "yes"]}}, "holds class ids"),
])
def test_verifier_refuses_a_count_label_that_is_not_a_count(label_type: str, values: list[Any],
                                                            extra: dict[str, Any], reason: str) -> None:
    reasons = check(count_profile(label_type, values, **extra), ["x"], "y", "count_regression")
    assert len(reasons) == 1 and reason in reasons[0], reasons
    assert check(count_profile("int", [0, 4, 2]), ["x"], "y", "count_regression") == []


def test_materialising_refuses_any_value_that_is_not_a_count() -> None:
    def convert(values: list[float]) -> datasets.DatasetDict:
        table = datasets.Dataset.from_dict({"x": list(range(len(values))), "y": values})
        dsd, _ = standardize(datasets.DatasetDict({"train": table}), task_type="count_regression",
                             input_columns=["x"], label_column="y")
        return dsd

    assert convert([0.0, 3.0, 7.0])["train"].features["y"].dtype == "int64"
    for bad in ([1.0, -2.0], [1.0, 0.5]):
        with pytest.raises(DatasetUnavailable, match="counts are non-negative integers"):
            convert(bad)


def test_series_of_different_lengths_are_refused() -> None:
    table = datasets.Dataset.from_dict({"s": [[1.0, 2.0], [1.0, 2.0, 3.0]], "y": ["a", "b"]})
    with pytest.raises(DatasetUnavailable, match="2 different lengths"):
        standardize(datasets.DatasetDict({"train": table}), task_type="time_series_classification",
                    input_columns=["s"], label_column="y")
    profile = DatasetProfile(id="t", source="local", features={"s": "str", "y": "int"},
                             split_sizes={"train": 200, "test": 50}, label_column="y")
    assert "needs one column holding a list of numbers" in check(profile, ["s"], "y", "time_series_classification")[0]


# --- the offline teacher's bundles in the sandbox ----------------------------------------------------------


def bundle_for(catalog: LocalCatalog, name: str, raw: Path, task_id: str) -> TaskBundle:
    profile = catalog.materialize(name, raw)
    card = {"name": name, "task_type": profile.task_type, "features": profile.features,
            "description": profile.description, "input_columns": profile.input_columns,
            "label_column": profile.label_column, "split_sizes": profile.split_sizes,
            "sample_rows": profile.sample_rows[:3]}
    draft = write_bundle(card, task_id=task_id)
    return TaskBundle(task_id=task_id, data=DataRef(key="k", splits={}), **draft.bundle_fields())


async def baseline_score(ws: Workspace) -> dict[str, float]:
    run = await ws.run("baseline", "python baseline.py", timeout=ws.bundle.training_timeout)
    assert run.exit_code == 0, run.stderr
    return (await ws.evaluate()).metrics


@pytest.mark.parametrize(("name", "task_id"), [("osuleaf", "tsc-1"), ("gunpoint", "tsc-2"), ("medpar", "count-1")])
async def test_bundle_runs_in_the_sandbox_and_the_edits_improve_it(catalog: LocalCatalog, tmp_path: Path,
                                                                   name: str, task_id: str) -> None:
    bundle = bundle_for(catalog, name, tmp_path / "raw", task_id)
    ws = await open_workspace(get_backend("bwrap"), bundle, tmp_path / "raw", tmp_path / "work")
    try:
        baseline = await baseline_score(ws)
        value = baseline[bundle.metric]
        train = (await ws.session.get("data/train.csv")).decode()
        if bundle.task_type == "time_series_classification":
            assert set(baseline) == {"accuracy", "f1_macro"} and 0.4 < value <= 1.0
            assert train.startswith("t_0,t_1,t_2,")
        else:
            assert set(baseline) == {"mean_poisson_deviance", "mae", "rmse"} and 0 < value < 20
        scores = []
        for edit in candidate_edits(bundle.files, bundle.task_type):
            assert (await ws.session.exec(edit.command)).ok
            scores.append((await baseline_score(ws))[bundle.metric])
    finally:
        await ws.close()
    assert len(scores) >= 2 and len(set(scores)) > 1, scores
    best = max(scores) if bundle.direction == "maximize" else min(scores)
    assert (best > value) if bundle.direction == "maximize" else (best < value), (value, scores)


BAD_COUNTS = {
    "negative.csv": (lambda s, label: s.assign(**{label: -s[label]}), "predictions are <= 0"),
    "zero.csv": (lambda s, label: s.assign(**{label: 0.0}), "predictions are <= 0"),
    "nan.csv": (lambda s, label: s.assign(**{label: [np.nan, *s[label].iloc[1:]]}), "1 predictions are missing"),
    "text.csv": (lambda s, label: s.assign(**{label: "many"}), "not finite numbers"),
    "foreign_ids.csv": (lambda s, label: s.assign(id=s["id"] + 10_000), "the ids are not the ids"),
    "short.csv": (lambda s, label: s.iloc[1:], "rows, expected"),
}


async def test_count_evaluate_refuses_bad_submissions(catalog: LocalCatalog, tmp_path: Path) -> None:
    bundle = bundle_for(catalog, "doctor_visits", tmp_path / "raw", "count-bad")
    label = "visits"
    ws = await open_workspace(get_backend("bwrap"), bundle, tmp_path / "raw", tmp_path / "work")
    try:
        await baseline_score(ws)
        good = pd.read_csv(tmp_path / "work" / "workspace" / "submission.csv")
        assert (good[label] > 0).all()
        for name, (corrupt, reason) in BAD_COUNTS.items():
            await ws.session.put(name, corrupt(good, label).to_csv(index=False).encode())
            result = await ws.run("evaluate", f"python evaluate.py --submission_file {name}", hidden=True)
            assert result.exit_code == 1 and result.stdout == "", (name, result.stdout)
            assert result.stderr.startswith("invalid submission:") and reason in result.stderr, (name, result.stderr)
    finally:
        await ws.close()


# --- the Hub mirror -------------------------------------------------------------------------------------------


async def test_mirror_lists_the_new_datasets_with_their_task_types(tmp_path: Path) -> None:
    counts = [source_table(s) for s in rdatasets_sources() if s.task_type == "count_regression"]
    tables = [t for t in builtin_tables() if t.meta["task_type"] in NEW_TYPES] + counts
    index = build_mirror(tmp_path / "hub-mirror", tables=tables)
    assert not index.skipped
    by_type = {t: [e for e in index.datasets if e.task_type == t] for t in NEW_TYPES}
    assert {e.id for e in by_type["time_series_classification"]} == {
        "builtin/gunpoint", "builtin/arrowhead", "builtin/italy_power_demand", "builtin/osuleaf"}
    assert len(by_type["count_regression"]) >= 10 and all(e.num_rows >= 150 for e in by_type["count_regression"])
    for entry in by_type["count_regression"]:
        frame = pd.read_parquet(parquet_path(tmp_path / "hub-mirror", entry.id, "train"))
        labels = frame[entry.label_column]
        assert labels.notna().all() and (labels >= 0).all() and (labels % 1 == 0).all(), entry.id
        assert entry.label_rule and set(entry.input_columns) <= set(frame.columns), entry.id
    assert all("UCR" in e.citation for e in by_type["time_series_classification"])
    server = MirrorServer(tmp_path / "hub-mirror")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base_url}/api/datasets", params={"search": "gunpoint"}) as resp:
                (gun,) = await resp.json()
            async with http.get(f"{server.base_url}/api/datasets",
                                params={"filter": "task_categories:tabular-regression"}) as resp:
                regression = {d["id"] for d in await resp.json()}
    finally:
        await server.stop()
    assert "modality:timeseries" in gun["tags"]
    assert {e.id for e in by_type["count_regression"]} <= regression
