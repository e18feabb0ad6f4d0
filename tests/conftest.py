"""Shared fixtures: a real nats-server per test (free port, temporary store) and a connected Bus."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.runtime import AgentContext, AgentRunner, Supervisor
from agents.sink import SinkAgent
from bus import Bus, BusSettings, EmbeddedNats
from catalog import LocalCatalog
from domain.payloads import PAYLOADS

# Planted so that any leak into sandboxes, events, logs or exports is detectable.
os.environ.setdefault("GYMFORGE_TEST_RUN", "1")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    async with EmbeddedNats(tmp_path / "jetstream", port=0) as server:
        yield server


@pytest.fixture(scope="session")
def builtin_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in dataset catalog, built once per test session."""
    root = tmp_path_factory.mktemp("catalog") / "catalog"
    LocalCatalog(root).build_builtin()
    return root


@pytest.fixture
def data_dir(tmp_path: Path, builtin_catalog: Path) -> Path:
    """A fresh gymforge data dir holding a copy of the built-in catalog (agents would build it on start)."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copytree(builtin_catalog, d / "catalog")
    return d


@pytest.fixture
async def sink(bus: Bus, data_dir: Path) -> AsyncIterator[Path]:
    """The real sink agent in this process, writing data_dir/gymforge.db; yields the db path."""
    db = data_dir / "gymforge.db"
    sup = Supervisor([AgentRunner(SinkAgent(AgentContext(bus=bus, data_dir=data_dir), db_path=db))])
    task = asyncio.create_task(sup.run())
    yield db
    sup.request_stop()
    await task


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    b = await Bus.connect(BusSettings(url=nats_server.url), types=PAYLOADS)
    yield b
    await b.close()
