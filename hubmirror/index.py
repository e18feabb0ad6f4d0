"""The mirror on disk: `index.json` (one entry per dataset) and, per dataset, its parquet files and the
viewer's data (features, first rows).

<root>/index.json
<root>/datasets/<owner>/<name>/viewer.json
<root>/datasets/<owner>/<name>/default/<split>/0000.parquet
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT = 1
INDEX = "index.json"
CONFIG = "default"
PARQUET = "0000.parquet"


class MirrorError(Exception):
    """The mirror directory cannot be used (missing, corrupt, or from another format): one line for the user."""


class SplitInfo(BaseModel):
    num_examples: int
    num_bytes: int  # the parquet file's size


class MirrorEntry(BaseModel):
    """One dataset: its Hub metadata and what gymforge knows of its task (as the package documents it)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    sha: str  # the revision: a hash of the data files
    pretty_name: str
    description: str
    citation: str = ""
    license: str
    homepage: str = ""
    package: str
    domain: str
    tags: list[str] = Field(default_factory=list)
    task_type: str | None = None
    label_column: str | None = None
    input_columns: list[str] = Field(default_factory=list)
    time_column: str | None = None
    label_rule: str = ""
    gated: bool = False
    splits: dict[str, SplitInfo]

    @property
    def num_rows(self) -> int:
        return sum(s.num_examples for s in self.splits.values())

    @property
    def size_bytes(self) -> int:
        return sum(s.num_bytes for s in self.splits.values())


class MirrorIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    built_at: str
    packages: dict[str, str]  # pip package -> version the data came from
    datasets: list[MirrorEntry]
    skipped: dict[str, str] = Field(default_factory=dict)  # source id -> why it was left out


def dataset_dir(root: Path, dataset_id: str) -> Path:
    owner, name = dataset_id.split("/", 1)
    return root / "datasets" / owner / name


def parquet_path(root: Path, dataset_id: str, split: str) -> Path:
    return dataset_dir(root, dataset_id) / CONFIG / split / PARQUET


def is_built(root: Path) -> bool:
    return (root / INDEX).is_file()


def load_index(root: Path) -> MirrorIndex:
    """The mirror's index, checked: every entry's viewer data and parquet files are present."""
    path = root / INDEX
    if not path.is_file():
        raise MirrorError(f"no mirror at {root} ({INDEX} missing): build it with `gymforge hub build`")
    try:
        raw = json.loads(path.read_text())
        index = MirrorIndex.model_validate(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MirrorError(f"corrupt mirror at {root}: {INDEX} is not JSON ({exc}); rebuild with "
                          "`gymforge hub build --force`") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MirrorError(f"corrupt mirror at {root}: {INDEX}: {where}: {first['msg']}; rebuild with "
                          "`gymforge hub build --force`") from None
    if index.format != FORMAT:
        raise MirrorError(f"the mirror at {root} has format {index.format}, this gymforge reads {FORMAT}: "
                          "rebuild with `gymforge hub build --force`")
    for entry in index.datasets:
        missing = [s for s in entry.splits if not parquet_path(root, entry.id, s).is_file()]
        if missing or not (dataset_dir(root, entry.id) / "viewer.json").is_file():
            what = f"parquet file of split {missing[0]}" if missing else "viewer.json"
            raise MirrorError(f"corrupt mirror at {root}: {entry.id} has no {what}; rebuild with "
                              "`gymforge hub build --force`")
    return index


def load_viewer(root: Path, dataset_id: str) -> dict[str, Any]:
    """{"features": the `datasets` Features dict, "first_rows": {split: [row, ...]}}."""
    path = dataset_dir(root, dataset_id) / "viewer.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MirrorError(f"corrupt mirror: {path}: {exc}") from None


def knowledge(index: MirrorIndex, min_rows: int = 150, max_rows: int = 60_000) -> list[dict[str, Any]]:
    """What the offline teacher "knows" of the Hub: the mirror's open datasets with a task and a label, of a
    size a task on 2 CPU cores can train on in minutes (as the proposer's system prompt asks)."""
    return [
        {"id": e.id, "source": "hub", "task_type": e.task_type, "label_column": e.label_column,
         "input_columns": e.input_columns, "domain": e.domain, "pretty_name": e.pretty_name,
         "description": e.description[:400], "num_rows": e.num_rows}
        for e in index.datasets
        if e.task_type and e.label_column and not e.gated and min_rows <= e.num_rows <= max_rows
    ]  # fmt: skip
