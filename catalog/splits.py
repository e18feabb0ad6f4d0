"""Deterministic train/test splits for data that comes without them, and split-name normalisation."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pandas as pd

from catalog.models import DatasetUnavailable

SEED = 0
TEST_FRACTION = 0.2
CLASSIFICATION_TASKS = frozenset(
    {"tabular_classification", "image_classification", "text_classification", "time_series_classification"}
)
SPLIT_ALIASES = {
    "training": "train", "valid": "validation", "val": "validation", "dev": "validation",
    "eval": "validation", "evaluation": "validation", "testing": "test",
}  # fmt: skip


def test_rows(num_rows: int, test_fraction: float = TEST_FRACTION) -> int:
    """How many of `num_rows` rows a cut puts in test (rounded up, as scikit-learn does)."""
    return min(num_rows - 1, max(1, math.ceil(round(num_rows * test_fraction, 9))))


def split_indices(
    num_rows: int, labels: list | None, *, chronological: bool, test_fraction: float = TEST_FRACTION
) -> tuple[list[int], list[int]]:
    """Train and test row indices: the last part for time series, else a seeded shuffle, stratified when
    every class has at least two rows."""
    if num_rows < 2:
        raise DatasetUnavailable(f"cannot split {num_rows} row(s) into train and test")
    test_size = test_rows(num_rows, test_fraction)
    if chronological:
        return list(range(num_rows - test_size)), list(range(num_rows - test_size, num_rows))
    from sklearn.model_selection import train_test_split  # slow to import; only needed here

    stratify = labels if labels is not None and _can_stratify(labels, test_size) else None
    train, test = train_test_split(
        np.arange(num_rows), test_size=test_size, random_state=SEED, shuffle=True, stratify=stratify
    )
    return train.tolist(), test.tolist()


def _can_stratify(labels: list, test_size: int) -> bool:
    counts = Counter(labels)
    return (
        len(counts) > 1
        and min(counts.values()) >= 2
        and len(counts) <= min(test_size, len(labels) - test_size)
    )


def chronological_order(times: Sequence[Any]) -> list[int]:
    """Row indices in time order (stable; missing times last)."""
    return pd.Series(list(times)).sort_values(kind="stable", na_position="last").index.tolist()


def split_dataset(
    dataset: datasets.Dataset,
    task_type: str | None,
    label_column: str | None,
    *,
    time_column: str | None = None,
    test_fraction: float = TEST_FRACTION,
) -> datasets.DatasetDict:
    """Split one dataset into train and test (see `split_indices`); a time series is first put in order
    of its `time_column`."""
    if task_type == "time_series_forecasting" and time_column in dataset.column_names:
        dataset = dataset.select(chronological_order(dataset[time_column]))
    stratify = task_type in CLASSIFICATION_TASKS and label_column in dataset.column_names
    labels = dataset[label_column] if stratify else None
    train, test = split_indices(
        dataset.num_rows,
        list(labels) if labels is not None else None,
        chronological=task_type == "time_series_forecasting",
        test_fraction=test_fraction,
    )
    return datasets.DatasetDict({"train": dataset.select(train), "test": dataset.select(test)})


def normalize_splits(
    dsd: datasets.DatasetDict, task_type: str | None, label_column: str | None, time_column: str | None = None
) -> datasets.DatasetDict:
    """Rename split aliases and make sure there are train and test splits: a lone split becomes train; a
    missing test is the validation split if there is one, else a deterministic cut of train."""
    splits = {SPLIT_ALIASES.get(name.lower(), name.lower()): ds for name, ds in dsd.items()}
    if "train" not in splits:
        if len(splits) != 1:
            raise DatasetUnavailable(f"no train split (splits: {', '.join(sorted(dsd)) or 'none'})")
        splits = {"train": next(iter(splits.values()))}
    if "test" not in splits:
        if "validation" in splits:
            splits["test"] = splits.pop("validation")
        else:
            cut = split_dataset(splits["train"], task_type, label_column, time_column=time_column)
            splits["train"], splits["test"] = cut["train"], cut["test"]
    return datasets.DatasetDict(
        {name: splits[name] for name in ("train", "validation", "test") if name in splits}
    )
