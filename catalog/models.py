"""What the catalogs return: a dataset's profile, and the errors that say why a dataset cannot be used."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.tasks import TaskType

Source = Literal["builtin", "local", "hub"]


class DatasetProfile(BaseModel):
    """Everything the verifier needs to judge a dataset, without loading its data.

    `features` maps a column to a type name: int, float, bool, str, datetime, bytes, image, audio, video,
    struct, json, or list<...> of those. `distinct_counts` holds the number of distinct values of each
    scalar column (over the train split for local data; over the preview rows, a lower bound, for the Hub).
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    source: Source
    task_type: TaskType | None = None
    description: str = ""
    license: str | None = None
    features: dict[str, str] = Field(default_factory=dict)
    input_columns: list[str] = Field(default_factory=list)
    label_column: str | None = None
    split_sizes: dict[str, int] = Field(default_factory=dict)
    sample_rows: list[dict[str, Any]] = Field(default_factory=list)
    size_bytes: int | None = None
    gated: bool = False
    private: bool = False
    image_shape: list[int] | None = None
    time_column: str | None = None
    class_names: dict[str, list[str]] = Field(default_factory=dict)
    distinct_counts: dict[str, int] = Field(default_factory=dict)
    config: str | None = None  # the Hub config (subset) this profile describes
    revision: str | None = None  # the Hub's commit sha of the dataset, when known
    origin: str | None = None  # where the data comes from: a pip package, a path, a Hub URL
    tags: list[str] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.id

    @property
    def num_rows(self) -> int:
        return sum(self.split_sizes.values())


class CatalogError(Exception):
    """Base of every catalog error."""


class DatasetNotFound(CatalogError):
    """No dataset with this id (the message carries the catalog's or the API's own words)."""

    def __init__(self, dataset_id: str, message: str = "") -> None:
        self.dataset_id = dataset_id
        self.message = message or "not found"
        super().__init__(f"dataset {dataset_id!r} not found: {self.message}")


class DatasetUnavailable(CatalogError):
    """The dataset exists (or was given) but cannot be used: gated, private, invalid or not loadable."""

    def __init__(self, reason: str, *, dataset_id: str | None = None) -> None:
        self.reason = reason
        self.dataset_id = dataset_id
        prefix = f"dataset {dataset_id!r} unavailable: " if dataset_id else ""
        super().__init__(prefix + reason)


class CatalogUnreachable(CatalogError):
    """A transient failure talking to a remote catalog (network, timeout, 429, 5xx): worth a retry."""
