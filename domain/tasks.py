"""What a task is: its type, its metric's direction, where its data lives and the bundle the coder writes.

Pure data: no I/O here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskType = Literal[
    "tabular_classification",
    "tabular_regression",
    "image_classification",
    "time_series_forecasting",
    "text_classification",
    "time_series_classification",
    "count_regression",
]
TASK_TYPES: tuple[str, ...] = TaskType.__args__  # type: ignore[attr-defined]
Direction = Literal["maximize", "minimize"]
Difficulty = Literal["easy", "medium", "hard"]


class Payload(BaseModel):
    """A payload on the bus, or a part of one: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid")


class DataRef(Payload):
    """Where a materialised dataset lives: a content hash naming parquet splits in the artifact store."""

    key: str
    splits: dict[str, str]  # split name -> object name in the artifact store
    bytes: int = 0


class TaskBundle(Payload):
    """An MLGym-compatible task: metadata plus the files the coder wrote.

    files: `prepare.py` (raw splits -> workspace data + hidden answers), `baseline.py`,
    `evaluate.py` (prints one JSON object), `sample_submission.csv`, optional others.
    """

    task_id: str
    name: str
    task_type: TaskType
    description: str  # holds {dataset_docs}; ends with a SUBMISSION FORMAT section
    dataset_name: str
    dataset_description: str = ""
    metric: str
    direction: Direction
    training_timeout: int = Field(default=300, ge=1)
    files: dict[str, str]
    starter_files: list[str] = Field(default_factory=lambda: ["baseline.py", "evaluate.py"])
    data: DataRef
