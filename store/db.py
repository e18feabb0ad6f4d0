"""The SQLite store: aiosqlite in WAL mode, batched writes for the sink, queries for the CLI."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from store.writes import Statement

SCHEMA = resources.files("store").joinpath("schema.sql").read_text()
# Columns added since a table was first created: (table, column, type). A store made before them gets them
# on open (ALTER TABLE ... ADD COLUMN; old rows read NULL).
ADDED_COLUMNS = (("usage", "cached_tokens", "INTEGER"), ("usage", "reasoning_tokens", "INTEGER"))


class StoreError(Exception):
    """The store cannot be opened or written (path unwritable, disk full, corrupt file)."""


async def add_columns(db: aiosqlite.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        async with db.execute(f"PRAGMA table_info({table})") as cur:
            have = {row[1] for row in await cur.fetchall()}
        if column not in have:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


class Store:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path, *, readonly: bool = False) -> Store:
        path = Path(path)
        try:
            if readonly:
                if not path.exists():
                    raise StoreError(f"no store at {path}: run the sink (`gymforge agent sink` or `gymforge run`) first")
                db = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = await aiosqlite.connect(path)
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=NORMAL")
                await db.executescript(SCHEMA)
                await add_columns(db)
                await db.commit()
            await db.execute("PRAGMA busy_timeout=10000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from None
        db.row_factory = aiosqlite.Row
        return cls(db, path)

    async def columns(self, table: str) -> set[str]:
        async with self.db.execute(f"PRAGMA table_info({table})") as cur:
            return {row[1] for row in await cur.fetchall()}

    async def close(self) -> None:
        await self.db.close()

    async def write(self, statements: Iterable[Statement]) -> None:
        """Run all statements in one transaction: all of them land or none do."""
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                await self.db.execute(sql, params)
            await self.db.commit()
        except BaseException:
            await self.db.rollback()
            raise

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        async with self.db.execute(sql, params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def stream_rows(self, sql: str, params: tuple[Any, ...] = (), size: int = 200) -> AsyncIterator[dict[str, Any]]:
        """Rows in chunks, for exports with bounded memory."""
        async with self.db.execute(sql, params) as cur:
            while chunk := await cur.fetchmany(size):
                for r in chunk:
                    yield dict(r)

    async def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
            return row[0] if row else None
