"""Reading datasets given by a user: `datasets.save_to_disk` directories, parquet or CSV files, and the
card (card.json, or the YAML front matter of a README.md dataset card) that says what they are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow.parquet as pq
import yaml

from catalog.layout import CARD_FILE, quiet_progress
from catalog.models import DatasetUnavailable
from catalog.splits import SPLIT_ALIASES

DATA_SUFFIXES = (".parquet", ".csv")
HF_TASK_CATEGORIES = {
    "tabular-classification": "tabular_classification",
    "tabular-regression": "tabular_regression",
    "image-classification": "image_classification",
    "text-classification": "text_classification",
    "time-series-forecasting": "time_series_forecasting",
}
CARD_FIELDS = (
    "name",
    "task_type",
    "description",
    "license",
    "input_columns",
    "label_column",
    "time_column",
    "image_shape",
)


def read_user_card(path: Path) -> dict[str, Any]:
    """The card next to (or inside) `path`: card.json wins over README.md; {} when there is neither."""
    folder = path if path.is_dir() else path.parent
    if (folder / CARD_FILE).is_file():
        try:
            card = json.loads((folder / CARD_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise DatasetUnavailable(f"{CARD_FILE} is not valid JSON: {exc}") from None
        if not isinstance(card, dict):
            raise DatasetUnavailable(f"{CARD_FILE} must hold a JSON object")
        return {key: card[key] for key in CARD_FIELDS if card.get(key) is not None}
    if (folder / "README.md").is_file():
        return readme_card((folder / "README.md").read_text())
    return {}


def readme_card(text: str) -> dict[str, Any]:
    """Card fields from a Hugging Face dataset card: YAML front matter (our keys, or `license`,
    `pretty_name`, `task_categories`) and the first paragraph of the body as the description."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n?(.*)$", text, re.DOTALL)
    meta, body = (yaml.safe_load(match.group(1)) or {}, match.group(2)) if match else ({}, text)
    if not isinstance(meta, dict):
        meta = {}
    card = {key: meta[key] for key in CARD_FIELDS if meta.get(key) is not None}
    if isinstance(card.get("license"), list):
        card["license"] = ",".join(str(v) for v in card["license"])
    if "task_type" not in card:
        categories = meta.get("task_categories") or []
        task = next((HF_TASK_CATEGORIES[c] for c in categories if c in HF_TASK_CATEGORIES), None)
        if task:
            card["task_type"] = task
    if "name" not in card and meta.get("pretty_name"):
        card["name"] = str(meta["pretty_name"])
    card.setdefault("description", first_paragraph(body))
    return card


def first_paragraph(markdown: str) -> str:
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line.strip() for line in block.strip().splitlines() if not line.lstrip().startswith("#")]
        if any(lines):
            return " ".join(line for line in lines if line)
    return ""


def load_user_data(path: Path) -> datasets.DatasetDict:
    """A `save_to_disk` directory, or parquet/CSV files named by split (or one file of any name)."""
    if not path.exists():
        raise DatasetUnavailable(
            f"{path} does not exist: give a datasets.save_to_disk directory, or .parquet/.csv files with a card.json"
        )
    with quiet_progress():
        if (path / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(path))
        if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
            return datasets.DatasetDict({"train": datasets.load_from_disk(str(path))})
        files = data_files(path)
        return datasets.DatasetDict({split: read_table_file(file) for split, file in files.items()})


def data_files(path: Path) -> dict[str, Path]:
    """Split name -> file: files named train/test/validation (or aliases); one file alone is train."""
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise DatasetUnavailable(f"{path.name}: give a .parquet or .csv file, or a directory")
        return {"train": path}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    by_split = {}
    for file in files:
        split = SPLIT_ALIASES.get(file.stem.lower(), file.stem.lower())
        if split in ("train", "validation", "test"):
            if split in by_split:
                raise DatasetUnavailable(
                    f"two files for the {split} split: {by_split[split].name}, {file.name}"
                )
            by_split[split] = file
    if by_split:
        return by_split
    if len(files) == 1:
        return {"train": files[0]}
    if not files:
        raise DatasetUnavailable(
            f"{path.name} holds no dataset: expected a datasets.save_to_disk directory or .parquet/.csv files"
        )
    raise DatasetUnavailable(f"{path.name} holds {len(files)} data files: name them train/test[/validation]")


def read_table_file(file: Path) -> datasets.Dataset:
    """One parquet file (keeping `datasets` feature metadata such as class names) or CSV file."""
    try:
        if file.suffix.lower() == ".parquet":
            return datasets.Dataset(pq.read_table(file))
        return datasets.Dataset.from_pandas(pd.read_csv(file), preserve_index=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetUnavailable(f"cannot read {file.name}: {exc}") from None
