"""The raw datasets an export re-prepares its tasks from: the local dataset cache first
(<data_dir>/cache/datasets/<key>, complete with every split), NATS's object store only for a dataset the
cache lacks. NATS is connected on the first such dataset (after a run with no server left, the data dir's
store is served for the export, as for every reading command: `app.local_bus`), so an export whose datasets
are all cached needs no server; when it is needed and cannot be reached, that task is unusable, with the
reason."""

from __future__ import annotations

import contextlib
from pathlib import Path

from agents.artifacts import fetch_dataset
from bus import Bus
from domain.tasks import DataRef
from gymforge.app import local_bus
from gymforge.config import Settings
from gymforge.errors import UserError
from gymforge.mlgym.records import TaskUnusable


class DatasetSource:
    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.cache_dir = s.data_dir / "cache" / "datasets"
        self.bus: Bus | None = None
        self.held = contextlib.AsyncExitStack()  # the connection (and the local server's lease) while open
        self.unreachable: str | None = None  # why NATS could not be connected (tried once)

    def cached(self, ref: DataRef) -> Path | None:
        target = self.cache_dir / ref.key
        complete = (target / ".complete").is_file()
        if complete and all((target / name.rsplit("/", 1)[-1]).is_file() for name in ref.splits.values()):
            return target
        return None

    async def fetch(self, ref: DataRef) -> Path:
        """The dataset's local directory: from the cache, else downloaded into it over NATS."""
        found = self.cached(ref)
        if found is not None:
            return found
        bus = await self.connected(ref)
        return await fetch_dataset(bus, ref, self.cache_dir)

    async def connected(self, ref: DataRef) -> Bus:
        if self.bus is None and self.unreachable is None:
            try:
                self.bus = await self.held.enter_async_context(
                    local_bus(self.settings, name="gymforge-export", setup=False))
            except UserError as exc:
                self.unreachable = str(exc)
        if self.bus is None:
            raise TaskUnusable(f"dataset {ref.key} is not in the local cache ({self.cache_dir}) and NATS, "
                               f"whose object store holds it, is unreachable: {self.unreachable}")
        return self.bus

    async def close(self) -> None:
        await self.held.aclose()
        self.bus = None
