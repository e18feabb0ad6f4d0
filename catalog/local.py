"""A catalog of datasets kept on disk in the standard layout, one directory per dataset under a root.

The built-in datasets live here too (their cards say source "builtin"); datasets a user adds say "local".
"""

from __future__ import annotations

import builtins
import fcntl
import re
from pathlib import Path
from typing import Any

import datasets

from catalog.builtin import build_builtin, is_built
from catalog.checks import resolve_columns, time_column_of
from catalog.convert import standardize
from catalog.features import class_names, features_to_types
from catalog.layout import copy_layout, distinct_counts, profile_from_dir, quiet_progress, write_layout
from catalog.models import DatasetNotFound, DatasetProfile, DatasetUnavailable
from catalog.sources import load_user_data, read_user_card
from catalog.splits import normalize_splits
from domain.tasks import TASK_TYPES

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_CLASS_DISTINCT = 50  # an int label with at most this many values reads as classes when guessing


class LocalCatalog:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def dataset_dir(self, dataset_id: str) -> Path:
        if not NAME_PATTERN.match(dataset_id) or ".." in dataset_id:
            raise DatasetNotFound(dataset_id, "not a valid local dataset name")
        return self.root / dataset_id

    def ids(self) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and is_built(p))

    def list(self) -> builtins.list[DatasetProfile]:
        return [self.describe(dataset_id) for dataset_id in self.ids()]

    def describe(self, dataset_id: str) -> DatasetProfile:
        directory = self.dataset_dir(dataset_id)
        if not is_built(directory):
            raise DatasetNotFound(dataset_id, f"not in the local catalog ({len(self.ids())} datasets)")
        return profile_from_dir(directory, dataset_id=dataset_id)

    def materialize(self, dataset_id: str, dest_dir: Path | str) -> DatasetProfile:
        """Copy the dataset's split files and card into `dest_dir`; returns the profile of the copy."""
        self.describe(dataset_id)
        copied = copy_layout(self.dataset_dir(dataset_id), Path(dest_dir))
        return profile_from_dir(copied, dataset_id=dataset_id)

    def build_builtin(self, *, force: bool = False) -> builtins.list[DatasetProfile]:
        """Build the built-in datasets here, under a file lock: roles and replicas on one machine share it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return build_builtin(self.root, force=force)

    def add(self, path: Path | str, *, name: str | None = None, replace: bool = False) -> DatasetProfile:
        """Add a `save_to_disk` directory or parquet/CSV files (with an optional card.json or README.md
        card giving the task type and columns) to the catalog, converted to the standard layout."""
        path = Path(path)
        card = read_user_card(path) if path.exists() else {}
        dataset_id = _clean_name(name or card.get("name") or (path.stem if path.is_file() else path.name))
        directory = self.dataset_dir(dataset_id)
        if directory.exists() and not replace:
            raise DatasetUnavailable(
                f"{dataset_id!r} is already in the catalog: pick another name or replace it"
            )
        dsd = load_user_data(path)
        fields = infer_card_fields(dsd, card)
        dsd = normalize_splits(dsd, fields["task_type"], fields["label_column"], fields.get("time_column"))
        with quiet_progress():
            dsd, standard = standardize(
                dsd,
                task_type=fields["task_type"],
                input_columns=fields["input_columns"],
                label_column=fields["label_column"],
                time_column=fields.get("time_column"),
                image_shape=fields.get("image_shape"),
            )
        meta = {
            "name": dataset_id, "source": "local", "task_type": fields["task_type"],
            "description": card.get("description", ""), "license": card.get("license"),
            "origin": f"added from {path.name}", **standard,
        }  # fmt: skip
        write_layout(dsd, meta, directory)
        return self.describe(dataset_id)


def _clean_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._-")[:100]
    if not cleaned:
        raise DatasetUnavailable(f"cannot make a dataset name from {name!r}: pass a name")
    return cleaned


def infer_card_fields(dsd: datasets.DatasetDict, card: dict[str, Any]) -> dict[str, Any]:
    """Task type, input, label (and time) columns: the card's, else guessed from the columns' types."""
    first = next(iter(dsd.values()))
    features = first.features.to_dict()
    types = features_to_types(features)
    _check_card_columns(card)
    draft = DatasetProfile(
        id="new", source="local", features=types, class_names=class_names(features),
        distinct_counts=distinct_counts(first, types), label_column=card.get("label_column"),
        input_columns=card.get("input_columns") or [], time_column=card.get("time_column"),
    )  # fmt: skip
    task_type = card.get("task_type") or guess_task_type(draft)
    if task_type not in TASK_TYPES:
        raise DatasetUnavailable(f"task_type {task_type!r} in the card is not one of {', '.join(TASK_TYPES)}")
    inputs, label = resolve_columns(draft, task_type)
    inputs, label = card.get("input_columns") or inputs, card.get("label_column") or label  # the card's win
    if not inputs or label is None:
        raise DatasetUnavailable(
            f"cannot tell the input and label columns of a {task_type} dataset with columns "
            f"{', '.join(types)}: give input_columns and label_column in a card.json"
        )
    fields = {"task_type": task_type, "input_columns": inputs, "label_column": label}
    if task_type == "time_series_forecasting":
        fields["time_column"] = time_column_of(draft)
    return fields | {key: card[key] for key in ("time_column", "image_shape") if card.get(key)}


def _check_card_columns(card: dict[str, Any]) -> None:
    inputs = card.get("input_columns", [])
    if not isinstance(inputs, list) or not all(isinstance(name, str) for name in inputs):
        raise DatasetUnavailable("input_columns in the card must be a list of column names")
    for key in ("label_column", "time_column"):
        if not isinstance(card.get(key, ""), str):
            raise DatasetUnavailable(f"{key} in the card must be a column name")
    shape = card.get("image_shape", [1])
    if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
        raise DatasetUnavailable("image_shape in the card must be a list of positive ints, e.g. [28, 28]")


def guess_task_type(draft: DatasetProfile) -> str:
    """A task type from column types alone (a time series needs a card: it looks like a table)."""
    if draft.time_column:
        return "time_series_forecasting"
    _, label = resolve_columns(draft, "tabular_classification")
    if label is None:
        raise DatasetUnavailable("no card says the task type or label column: add a card.json with both")
    label_type = draft.features[label]
    is_classes = (
        label in draft.class_names
        or label_type in ("str", "bool")
        or (
            label_type == "int"
            and draft.distinct_counts.get(label, MAX_CLASS_DISTINCT + 1) <= MAX_CLASS_DISTINCT
        )
    )
    if not is_classes:
        return "tabular_regression"
    for task_type in ("image_classification", "text_classification"):
        inputs, _ = resolve_columns(draft, task_type)
        if inputs and _is_sole_input(draft, inputs[0], label):
            return task_type
    return "tabular_classification"


def _is_sole_input(draft: DatasetProfile, column: str, label: str) -> bool:
    """An image or text column that, besides the label, is the dataset's only column."""
    return set(draft.features) - {label} == {column}
