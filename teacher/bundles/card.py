"""Read a dataset card (the verifier's description of a materialised dataset) into a bundle schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.tasks import TASK_TYPES

ID_COLUMN = "id"
# Columns the bundle code adds itself, so a dataset column of that name cannot be kept.
RESERVED_COLUMNS = {"time_series_forecasting": ("step",)}
_NUMERIC_WORDS = ("int", "float", "double", "decimal", "number", "bool", "classlabel")
_NON_SCALAR_WORDS = ("list", "sequence", "array", "image", "struct", "dict")
_TIME_WORDS = ("date", "time")


class CardError(ValueError):
    """The card cannot describe a task of its type (missing label, no inputs, ...)."""


def is_numeric_type(type_name: str) -> bool:
    """Whether a card type name ("float64", "Value('int32')", "ClassLabel(...)") holds numbers."""
    lowered = type_name.lower()
    if any(word in lowered for word in _NON_SCALAR_WORDS):
        return False
    return any(word in lowered for word in _NUMERIC_WORDS)


@dataclass(frozen=True)
class Schema:
    """What the templates need to know about a dataset, checked for its task type."""

    name: str
    task_type: str
    description: str
    label: str
    inputs: tuple[str, ...]  # model inputs, excluding the label, `id` and (forecasting) the time column
    types: dict[str, str] = field(default_factory=dict)
    time_column: str | None = None
    image_shape: tuple[int, ...] | None = None
    season_length: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    sample_label: Any = None

    @property
    def columns(self) -> list[str]:
        """Every real column the task uses: the card's names the bundle code may spell."""
        extra = [self.time_column] if self.time_column else []
        return [*self.inputs, *extra, self.label]

    @property
    def label_is_numeric(self) -> bool:
        type_name = self.types.get(self.label)
        if type_name is not None:
            return is_numeric_type(type_name)
        return isinstance(self.sample_label, int | float)

    @property
    def image_column(self) -> str | None:
        """`image` by convention, else the first input column."""
        return "image" if "image" in self.inputs else next(iter(self.inputs), None)

    @property
    def series_column(self) -> str | None:
        """`series` by convention, else the first input column."""
        return "series" if "series" in self.inputs else next(iter(self.inputs), None)

    @property
    def text_column(self) -> str | None:
        """`text` by convention, else the first string-typed input column, else the first input column."""
        if "text" in self.inputs:
            return "text"
        texts = [c for c in self.inputs if "str" in self.types.get(c, "").lower()]
        return texts[0] if texts else next(iter(self.inputs), None)


def read_card(card: dict[str, Any]) -> Schema:
    """Check a card and derive the schema; raises CardError naming what is missing."""
    task_type = card.get("task_type")
    if task_type not in TASK_TYPES:
        raise CardError(f"unknown task_type {task_type!r}; expected one of {', '.join(TASK_TYPES)}")
    label = card.get("label_column")
    if not label:
        raise CardError("the card has no label_column")
    if label == ID_COLUMN:
        raise CardError(f"the label column may not be called {ID_COLUMN!r}: that name is the submission id")
    types = {str(k): str(v) for k, v in (card.get("features") or {}).items()}
    inputs = list(card.get("input_columns") or [c for c in types if c != label])
    time_column = _time_column(card, inputs, types) if task_type == "time_series_forecasting" else None
    reserved = {label, ID_COLUMN, time_column, *(RESERVED_COLUMNS.get(task_type, ()))}
    inputs = [c for c in inputs if c not in reserved]
    if task_type.startswith("tabular_") or task_type == "count_regression":  # a list cannot be a tabular feature
        inputs = [c for c in inputs if c not in types or not any(w in types[c].lower() for w in _NON_SCALAR_WORDS)]
    if not inputs and task_type != "time_series_forecasting":
        raise CardError("the card has no usable input columns besides the label")
    shape = card.get("image_shape")
    return Schema(
        name=str(card.get("name") or "dataset"),
        task_type=task_type,
        description=str(card.get("description") or ""),
        label=label,
        inputs=tuple(inputs),
        types=types,
        time_column=time_column,
        image_shape=tuple(int(n) for n in shape) if shape else None,
        season_length=int(card["season_length"]) if card.get("season_length") else None,
        split_sizes={str(k): int(v) for k, v in (card.get("split_sizes") or {}).items()},
        sample_label=_sample_label(card, label),
    )


def _time_column(card: dict[str, Any], inputs: list[str], types: dict[str, str]) -> str:
    if card.get("time_column"):
        return str(card["time_column"])
    for column in inputs:
        if any(word in types.get(column, "").lower() or word in column.lower() for word in _TIME_WORDS):
            return column
    raise CardError("a time_series_forecasting card needs a time_column")


def _sample_label(card: dict[str, Any], label: str) -> Any:
    for row in card.get("sample_rows") or []:
        if isinstance(row, dict) and row.get(label) is not None:
            return row[label]
    return None
