"""Pure helpers over the Hub's and the dataset viewer's answers (license, configs, split names, the
profile from `/info` and `/first-rows`, the parquet listing), and the conversion of downloaded parquet
files into the standard layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from catalog.convert import drop_missing_labels, standardize
from catalog.features import SCALAR_TYPES, class_names, features_to_types
from catalog.layout import json_safe, quiet_progress, write_layout
from catalog.models import DatasetProfile, DatasetUnavailable
from catalog.splits import SPLIT_ALIASES, normalize_splits

SAMPLE_ROWS = 5


def license_of(card: Mapping[str, Any], tags: Sequence[str]) -> str | None:
    value = card.get("license")
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or None
    if value:
        return str(value)
    from_tags = [tag.split(":", 1)[1] for tag in tags if isinstance(tag, str) and tag.startswith("license:")]
    return ",".join(from_tags) or None


def choose_config(split_items: Sequence[Mapping[str, Any]], wanted: str | None, dataset_id: str) -> str:
    configs = list(dict.fromkeys(str(item["config"]) for item in split_items if "config" in item))
    if wanted is not None:
        if wanted not in configs:
            raise DatasetUnavailable(
                f"no config {wanted!r} (configs: {', '.join(configs) or 'none'})", dataset_id=dataset_id
            )
        return wanted
    if not configs:
        raise DatasetUnavailable("the dataset viewer lists no splits", dataset_id=dataset_id)
    return "default" if "default" in configs else configs[0]


def split_name(raw: str) -> str:
    name = raw.lower().removeprefix("partial-")
    return SPLIT_ALIASES.get(name, name)


def raw_split_name(config_info: Mapping[str, Any], name: str) -> str:
    return next((raw for raw in config_info.get("splits") or {} if split_name(raw) == name), name)


def with_viewer_data(
    base: DatasetProfile,
    config: str,
    config_info: Mapping[str, Any],
    split_sizes: dict[str, int],
    preview: Mapping[str, Any],
) -> DatasetProfile:
    features = config_info.get("features") or {
        item["name"]: item["type"] for item in preview.get("features", [])
    }
    types = features_to_types(features)
    rows = [item.get("row", {}) for item in preview.get("rows", [])]
    return base.model_copy(
        update={
            "config": config,
            "features": types,
            "class_names": class_names(features),
            "split_sizes": split_sizes,
            "sample_rows": [json_safe(row) for row in rows[:SAMPLE_ROWS]],
            "distinct_counts": preview_distinct_counts(rows, types),
            "size_bytes": config_info.get("dataset_size"),
            "image_shape": preview_image_shape(rows, types),
            "license": base.license or config_info.get("license") or None,
            "description": base.description or str(config_info.get("description") or "").strip(),
        }
    )


def preview_distinct_counts(rows: Sequence[Mapping[str, Any]], types: Mapping[str, str]) -> dict[str, int]:
    return {
        name: len({repr(row.get(name)) for row in rows if row.get(name) is not None})
        for name, type_name in types.items()
        if type_name in SCALAR_TYPES and rows
    }


def preview_image_shape(rows: Sequence[Mapping[str, Any]], types: Mapping[str, str]) -> list[int] | None:
    for name, type_name in types.items():
        cell = rows[0].get(name) if rows and type_name == "image" else None
        if isinstance(cell, dict) and cell.get("height") and cell.get("width"):
            return [int(cell["height"]), int(cell["width"])]
    return None


def files_by_split(
    files: Sequence[Mapping[str, Any]], config: str | None, wanted: Sequence[str] | None
) -> dict[str, list[Mapping[str, Any]]]:
    """This config's parquet files by (normalised) split name, in listing order; only `wanted` splits, or
    train/validation/test, or every split when none has those names."""
    by_split: dict[str, list[Mapping[str, Any]]] = {}
    for item in files:
        if item.get("config") == config:
            by_split.setdefault(split_name(str(item.get("split", ""))), []).append(item)
    keep = (
        [split_name(s) for s in wanted]
        if wanted
        else [s for s in ("train", "validation", "test") if s in by_split]
    )
    return {name: by_split[name] for name in keep if name in by_split} if keep else by_split


@dataclass
class ParquetConversion:
    """Downloaded parquet files -> the standard layout (blocking work, run in a thread)."""

    paths: dict[str, list[Path]]
    cache: Path
    task_type: str
    inputs: list[str]
    label: str
    time_column: str | None
    max_rows: int | None
    meta: dict[str, Any]

    def run(self, dest: Path) -> Path:
        with quiet_progress():
            dsd = datasets.DatasetDict(
                {split: self._load(split, files) for split, files in self.paths.items()}
            )
            if all(self.label in ds.column_names for ds in dsd.values()):  # before a stratified cut of train
                dsd = drop_missing_labels(dsd, self.label)
            dsd = normalize_splits(dsd, self.task_type, self.label, self.time_column)
            dsd, fields = standardize(
                dsd,
                task_type=self.task_type,
                input_columns=self.inputs,
                label_column=self.label,
                time_column=self.time_column,
            )
        return write_layout(dsd, {**self.meta, **fields}, dest)

    def _load(self, split: str, files: list[Path]) -> datasets.Dataset:
        try:
            dataset = datasets.Dataset.from_parquet(
                [str(f) for f in files], cache_dir=str(self.cache), keep_in_memory=True
            )
        except Exception as exc:  # a corrupt or non-parquet download
            raise DatasetUnavailable(
                f"cannot read the {split} parquet files: {type(exc).__name__}: {exc}"
            ) from None
        if self.max_rows is None or dataset.num_rows <= self.max_rows:
            return dataset
        if self.task_type == "time_series_forecasting":  # keep train and test adjacent in time
            start = dataset.num_rows - self.max_rows if split == "train" else 0
            return dataset.select(range(start, start + self.max_rows))
        return dataset.shuffle(seed=0).select(range(self.max_rows)).flatten_indices()
