"""The standard on-disk layout of a materialised dataset: one parquet file per split plus `card.json`.

<dir>/train.parquet  <dir>/test.parquet  [<dir>/validation.parquet]  <dir>/card.json
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from catalog.features import SCALAR_TYPES, class_names, features_to_types
from catalog.models import DatasetProfile, DatasetUnavailable

CARD_FILE = "card.json"
SPLIT_NAMES = ("train", "validation", "test")
SAMPLE_ROWS = 5
MAX_SAMPLE_STR = 300
MAX_SAMPLE_LIST = 16
CARD_KEYS = (
    "name", "source", "task_type", "description", "license", "features", "input_columns", "label_column",
    "split_sizes", "image_shape", "time_column", "class_names", "distinct_counts", "origin",
)  # fmt: skip


_QUIET = threading.Lock()
_quiet_depth = [0, False]  # catalog work in progress (in any thread); were the bars enabled before it


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No `datasets` progress bars while catalog work runs (they are noise in agent logs). Counted, so
    work in one thread ending does not turn the bars back on under work still running in another."""
    with _QUIET:
        if _quiet_depth[0] == 0:
            _quiet_depth[1] = datasets.is_progress_bar_enabled()
            datasets.disable_progress_bars()
        _quiet_depth[0] += 1
    try:
        yield
    finally:
        with _QUIET:
            _quiet_depth[0] -= 1
            if _quiet_depth[0] == 0 and _quiet_depth[1]:
                datasets.enable_progress_bars()


def json_safe(value: Any) -> Any:
    """A JSON-safe, shortened copy of one cell: long strings and lists are cut, NaN becomes None."""
    if isinstance(value, str):
        return (
            value
            if len(value) <= MAX_SAMPLE_STR
            else value[:MAX_SAMPLE_STR] + f"… (+{len(value) - MAX_SAMPLE_STR} chars)"
        )
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple)):
        head = [json_safe(v) for v in value[:MAX_SAMPLE_LIST]]
        return head + [f"… (+{len(value) - MAX_SAMPLE_LIST} items)"] if len(value) > MAX_SAMPLE_LIST else head
    return str(value)


def distinct_counts(dataset: datasets.Dataset, types: dict[str, str]) -> dict[str, int]:
    """Distinct values per scalar column (nulls not counted)."""
    return {
        name: int(pc.count_distinct(dataset.data.column(name)).as_py())
        for name, type_name in types.items()
        if type_name in SCALAR_TYPES
    }


def build_card(dsd: datasets.DatasetDict, meta: dict[str, Any]) -> dict[str, Any]:
    """The card of a dataset dict: the given metadata plus what the data itself tells."""
    features = dsd["train"].features.to_dict()
    types = features_to_types(features)
    card = dict(meta)
    card["features"] = types
    card["split_sizes"] = {name: dsd[name].num_rows for name in SPLIT_NAMES if name in dsd}
    card["class_names"] = class_names(features)
    card["distinct_counts"] = distinct_counts(dsd["train"], types)
    return {key: card[key] for key in CARD_KEYS if card.get(key) is not None}


def write_layout(dsd: datasets.DatasetDict, meta: dict[str, Any], dest: Path) -> Path:
    """Write the splits and the card into `dest` (replaced whole; written aside, then renamed in)."""
    missing = [name for name in ("train", "test") if name not in dsd]
    if missing:
        raise DatasetUnavailable(f"cannot write a dataset without the {' and '.join(missing)} split")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        with quiet_progress():
            for name in SPLIT_NAMES:
                if name in dsd:
                    dsd[name].to_parquet(str(tmp / f"{name}.parquet"))
        card = build_card(dsd, meta)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_card(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetUnavailable(f"no {CARD_FILE} in {directory}") from None
    except json.JSONDecodeError as exc:
        raise DatasetUnavailable(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise DatasetUnavailable(f"{path} must hold a JSON object")
    return card


def split_files(directory: Path) -> dict[str, Path]:
    return {
        name: Path(directory) / f"{name}.parquet"
        for name in SPLIT_NAMES
        if (Path(directory) / f"{name}.parquet").exists()
    }


def sample_rows(parquet_file: Path, count: int = SAMPLE_ROWS) -> list[dict[str, Any]]:
    """The first `count` rows of a parquet file, JSON-safe and shortened."""
    batches = pq.ParquetFile(parquet_file).iter_batches(batch_size=count)
    first = next(batches, None)
    return [] if first is None else [json_safe(row) for row in first.to_pylist()[:count]]


def profile_from_dir(directory: Path, *, dataset_id: str | None = None) -> DatasetProfile:
    """The profile of a dataset in the standard layout (reads the card and the first rows only)."""
    directory = Path(directory)
    card = read_card(directory)
    try:
        return _profile(directory, card, dataset_id)
    except ValidationError as exc:
        raise DatasetUnavailable(
            f"the card in {directory.name} is invalid: {exc.errors()[0]['msg']}"
        ) from None


def _profile(directory: Path, card: dict[str, Any], dataset_id: str | None) -> DatasetProfile:
    files = split_files(directory)
    first_split = files.get("train") or next(iter(files.values()), None)
    return DatasetProfile(
        id=dataset_id or card.get("name") or directory.name,
        source=card.get("source", "local"),
        task_type=card.get("task_type"),
        description=card.get("description", ""),
        license=card.get("license"),
        features=card.get("features", {}),
        input_columns=card.get("input_columns", []),
        label_column=card.get("label_column"),
        split_sizes=card.get("split_sizes", {}),
        sample_rows=sample_rows(first_split) if first_split else [],
        size_bytes=sum(path.stat().st_size for path in files.values()),
        image_shape=card.get("image_shape"),
        time_column=card.get("time_column"),
        class_names=card.get("class_names", {}),
        distinct_counts=card.get("distinct_counts", {}),
        origin=card.get("origin"),
    )


def copy_layout(source: Path, dest: Path) -> Path:
    """Copy a dataset in the standard layout (its split files and card) into `dest`, removing split files
    left there by an earlier copy that this dataset does not have; other files in `dest` are kept."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files, present = split_files(source), split_files(dest)
    for stale in set(present) - set(files):
        present[stale].unlink()
    for path in [*files.values(), Path(source) / CARD_FILE]:
        shutil.copy2(path, dest / path.name)
    return dest
