"""Dataset catalogs for the verifier: the built-in one (real data shipped inside pip packages), local
datasets on disk, and the Hugging Face Hub. Every dataset is materialised in one layout — a parquet file
per split plus `card.json` — and judged by `check` against a proposed task.
"""

from catalog.builtin import BUILTIN, build_builtin
from catalog.checks import check, resolve_columns
from catalog.hub import HubCatalog
from catalog.local import LocalCatalog
from catalog.models import (
    CatalogError,
    CatalogUnreachable,
    DatasetNotFound,
    DatasetProfile,
    DatasetUnavailable,
)

__all__ = [
    "BUILTIN",
    "CatalogError",
    "CatalogUnreachable",
    "DatasetNotFound",
    "DatasetProfile",
    "DatasetUnavailable",
    "HubCatalog",
    "LocalCatalog",
    "build_builtin",
    "check",
    "resolve_columns",
]
