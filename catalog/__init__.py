"""Dataset catalogs for the verifier: the built-in one (real data shipped inside pip packages), local
datasets on disk, and the Hugging Face Hub. Every dataset is materialised in one layout — a parquet file
per split plus `card.json` — and judged by `check` against a proposed task.

The names below are loaded on first use (PEP 562): `datasets` and pandas take seconds to import, and the
light parts (`catalog.models`, `catalog.settings`) are needed by every command that reads the settings.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BUILTIN": "catalog.builtin", "build_builtin": "catalog.builtin", "check": "catalog.checks",
    "resolve_columns": "catalog.checks", "HubCatalog": "catalog.hub", "LocalCatalog": "catalog.local",
    "CatalogError": "catalog.models", "CatalogUnreachable": "catalog.models", "DatasetNotFound": "catalog.models",
    "DatasetProfile": "catalog.models", "DatasetUnavailable": "catalog.models", "HubSettings": "catalog.settings",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
