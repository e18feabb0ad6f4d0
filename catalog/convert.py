"""Bring a dataset to the task-type conventions that generated task code relies on.

- image_classification: column `image` = flat list of pixel values, `image_shape` [h, w] or [h, w, c];
  label column `label` (int).
- text_classification: column `text` (str); label column `label`.
- classification labels that are strings become class ids (ClassLabel, names kept in the card).
- time_series_forecasting: a time column (`time_column`; dates become ISO strings) and a numeric target.
- time_series_classification: column `series` = one whole univariate series per row, a list of floats,
  every series of one length; label column `label`.
- count_regression: a label column of non-negative whole numbers (int64); any other value is refused.
"""

from __future__ import annotations

import io
import math
from typing import Any

import datasets
import numpy as np

from catalog.features import feature_type_name
from catalog.models import DatasetUnavailable
from catalog.splits import CLASSIFICATION_TASKS

PIXELS = "__pixels__"
TIME_COLUMN_NAMES = ("date", "datetime", "timestamp", "time", "ds", "period", "year", "step", "t")


def standardize(
    dsd: datasets.DatasetDict,
    *,
    task_type: str,
    input_columns: list[str],
    label_column: str,
    time_column: str | None = None,
    image_shape: list[int] | None = None,
) -> tuple[datasets.DatasetDict, dict[str, Any]]:
    """Keep the input, label (and time) columns and apply the conventions; returns the data and the card
    fields that describe it (input_columns, label_column, image_shape/time_column)."""
    columns = _require_columns(dsd, [*input_columns, label_column, *([time_column] if time_column else [])])
    dsd = drop_missing_labels(dsd.select_columns(columns), label_column)
    meta: dict[str, Any] = {"input_columns": list(input_columns), "label_column": label_column}
    if task_type in CLASSIFICATION_TASKS:
        dsd = encode_labels(dsd, label_column)
    if task_type == "image_classification":
        dsd, shape = flatten_images(dsd, input_columns[0], image_shape)
        dsd, meta = _rename(dsd, meta, input_columns[0], "image", label_column, "label")
        meta["image_shape"] = shape
    elif task_type == "text_classification":
        dsd, meta = _rename(dsd, meta, input_columns[0], "text", label_column, "label")
    elif task_type == "time_series_classification":
        dsd = series_as_floats(dsd, input_columns[0])
        dsd, meta = _rename(dsd, meta, input_columns[0], "series", label_column, "label")
    elif task_type == "count_regression":
        dsd = counts_as_ints(dsd, label_column)
    elif task_type == "time_series_forecasting":
        time_column = time_column or guess_time_column(dsd["train"].features.to_dict(), input_columns)
        if time_column is None:
            raise DatasetUnavailable("forecasting needs a time column (set time_column in the card)")
        dsd = dates_to_strings(dsd, time_column)
        if time_column not in meta["input_columns"]:
            meta["input_columns"] = [time_column, *meta["input_columns"]]
        meta["time_column"] = time_column
    order = [*meta["input_columns"], meta["label_column"]]
    return dsd.select_columns(list(dict.fromkeys(order))), meta


def _require_columns(dsd: datasets.DatasetDict, wanted: list[str]) -> list[str]:
    columns = list(dict.fromkeys(wanted))
    present = set(next(iter(dsd.values())).column_names)
    missing = [name for name in columns if name not in present]
    if missing:
        raise DatasetUnavailable(
            f"column(s) {', '.join(missing)} not in the data (columns: {', '.join(sorted(present))})"
        )
    return columns


def _rename(
    dsd: datasets.DatasetDict,
    meta: dict[str, Any],
    input_from: str,
    input_to: str,
    label_from: str,
    label_to: str,
) -> tuple[datasets.DatasetDict, dict[str, Any]]:
    renames = {old: new for old, new in ((input_from, input_to), (label_from, label_to)) if old != new}
    clashes = [new for new in renames.values() if new in dsd["train"].column_names and new not in renames]
    for name in clashes:  # an unused column already called `text`/`label` makes room
        dsd = dsd.remove_columns(name)
    dsd = dsd.rename_columns(renames)
    meta = dict(meta)
    meta["input_columns"] = [renames.get(name, name) for name in meta["input_columns"]]
    meta["label_column"] = renames.get(meta["label_column"], meta["label_column"])
    return dsd, meta


def encode_labels(dsd: datasets.DatasetDict, label_column: str) -> datasets.DatasetDict:
    """String or bool labels become class ids with the names kept; whole-number floats become ints."""
    feature = dsd["train"].features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return dsd
    type_name = feature_type_name(_serialized(feature))
    if type_name == "bool":
        dsd = dsd.map(lambda batch: {label_column: [int(v) for v in batch[label_column]]}, batched=True)
        return dsd.cast_column(label_column, datasets.ClassLabel(names=["false", "true"]))
    if type_name == "str":
        names = sorted({v for ds in dsd.values() for v in ds.unique(label_column)})
        return dsd.cast_column(label_column, datasets.ClassLabel(names=names))
    if type_name == "float" and all(_is_whole(v) for ds in dsd.values() for v in ds.unique(label_column)):
        return dsd.cast_column(label_column, datasets.Value("int64"))
    return dsd


def drop_missing_labels(dsd: datasets.DatasetDict, label_column: str) -> datasets.DatasetDict:
    """Rows without a label cannot be trained or scored on."""
    if all(ds.data.column(label_column).null_count == 0 for ds in dsd.values()):
        return dsd
    return dsd.filter(lambda batch: [v is not None for v in batch[label_column]], batched=True)


def _is_whole(value: Any) -> bool:
    return value is not None and not math.isnan(value) and float(value).is_integer()


def guess_time_column(features: dict[str, Any], candidates: list[str]) -> str | None:
    """A datetime column, else the first column whose name says it is time."""
    for name in [*candidates, *features]:
        if feature_type_name(features.get(name)) == "datetime":
            return name
    for wanted in TIME_COLUMN_NAMES:
        for name in features:
            if name.lower() == wanted:
                return name
    return None


def dates_to_strings(dsd: datasets.DatasetDict, column: str) -> datasets.DatasetDict:
    """Datetime values become ISO strings (dates alone when every value is at midnight)."""
    if feature_type_name(_serialized(dsd["train"].features[column])) != "datetime":
        return dsd
    values = [v for ds in dsd.values() for v in ds[column] if v is not None]
    date_only = all(
        getattr(v, "hour", 0) == 0 and getattr(v, "minute", 0) == 0 and getattr(v, "second", 0) == 0
        for v in values
    )

    def to_iso(batch: dict[str, list]) -> dict[str, list]:
        return {
            column: [
                None if v is None else (v.date() if date_only and hasattr(v, "date") else v).isoformat()
                for v in batch[column]
            ]
        }

    features = {name: feature for name, feature in dsd["train"].features.items()}
    features[column] = datasets.Value("string")
    return dsd.map(to_iso, batched=True, features=datasets.Features(features))


def flatten_images(
    dsd: datasets.DatasetDict, column: str, image_shape: list[int] | None
) -> tuple[datasets.DatasetDict, list[int]]:
    """Images (an Image feature, or nested lists of pixels) become flat lists of pixels of one shape."""
    feature = dsd["train"].features[column]
    if isinstance(feature, datasets.Image):
        dsd = dsd.cast_column(column, datasets.Image(decode=False))
        decode = _decode_image_bytes
    else:
        type_name = feature_type_name(_serialized(feature))
        if not type_name.startswith("list<"):
            raise DatasetUnavailable(
                f"image column {column!r} is {type_name}, not an image or a list of pixels"
            )
        decode = np.asarray
    shapes: set[tuple[int, ...]] = set()

    def flatten(batch: dict[str, list]) -> dict[str, list]:
        arrays = [decode(value) for value in batch[column]]
        shapes.update(array.shape for array in arrays)
        return {PIXELS: [array.reshape(-1).tolist() for array in arrays]}

    dsd = dsd.map(flatten, batched=True, batch_size=256, remove_columns=[column], load_from_cache_file=False)
    return dsd.rename_column(PIXELS, column), _image_shape(shapes, image_shape, column)


def series_as_floats(dsd: datasets.DatasetDict, column: str) -> datasets.DatasetDict:
    """Each row's series as a list of floats; refuses a column that is not one flat list of numbers per
    row, a series with missing values, and series of different lengths."""
    type_name = feature_type_name(_serialized(dsd["train"].features[column]))
    if type_name not in ("list<float>", "list<int>"):
        raise DatasetUnavailable(f"series column {column!r} is {type_name}, not a list of numbers (one series a row)")
    lengths: set[int] = set()
    for split in dsd.values():
        for values in split.data.column(column).to_pylist():
            if values is None or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                raise DatasetUnavailable(f"series column {column!r} has a missing series or missing values")
            lengths.add(len(values))
    if len(lengths) != 1 or 0 in lengths:
        raise DatasetUnavailable(
            f"series in {column!r} have {len(lengths)} different lengths ({sorted(lengths)[:5]}); they must share one"
        )
    return dsd.cast_column(column, datasets.Sequence(datasets.Value("float64")))


def counts_as_ints(dsd: datasets.DatasetDict, label_column: str) -> datasets.DatasetDict:
    """The count label as int64, after checking every value is a whole number >= 0 (missing labels are
    already dropped)."""
    feature = dsd["train"].features[label_column]
    type_name = "class ids" if isinstance(feature, datasets.ClassLabel) else feature_type_name(_serialized(feature))
    if type_name not in ("int", "float"):
        raise DatasetUnavailable(f"count label {label_column!r} is {type_name}: counts are non-negative integers")
    for split in dsd.values():
        for value in split.unique(label_column):
            if not _is_whole(value) or value < 0:
                raise DatasetUnavailable(
                    f"count label {label_column!r} holds {value!r}: counts are non-negative integers"
                )
    return dsd.cast_column(label_column, datasets.Value("int64"))


def _decode_image_bytes(value: dict[str, Any]) -> np.ndarray:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise DatasetUnavailable("decoding image files needs Pillow (pip install pillow)") from None
    data = value.get("bytes") if isinstance(value, dict) else None
    if data is None:
        raise DatasetUnavailable("an image has no embedded bytes (only a path), so it cannot be decoded")
    return np.asarray(PILImage.open(io.BytesIO(data)))


def _image_shape(shapes: set[tuple[int, ...]], declared: list[int] | None, column: str) -> list[int]:
    if len(shapes) != 1:
        raise DatasetUnavailable(
            f"images in {column!r} have {len(shapes)} different shapes; they must share one"
        )
    shape = list(next(iter(shapes)))
    if len(shape) >= 2:
        return shape
    if declared and math.prod(declared) == shape[0]:
        return list(declared)
    side = math.isqrt(shape[0])
    if side * side == shape[0]:
        return [side, side]
    raise DatasetUnavailable(f"flat images of {shape[0]} pixels: give image_shape in the card")


def _serialized(feature: Any) -> Any:
    """The serialized (dict) form of one feature object."""
    return datasets.Features({"x": feature}).to_dict()["x"]
