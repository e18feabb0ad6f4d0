"""The sink: the one writer of the SQLite store. Consumes every subject (`gf.>`) and records each event
once (upsert by id) in the ledger and the entity tables, in batched transactions: a handler's message is
acked only after the batch holding its rows has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.msg import Msg

from agents.runtime import Agent, AgentContext, Emit, RoleSettings
from bus import Event, type_of
from store.db import Store
from store.writes import Statement, entity_rows, invalid_row, ledger_row, replayed_row

REPLAY_HEADER = "Gymforge-Replay-Of"

# Errors of one event's statements (a constraint, a value SQLite cannot store), not of the database
ITEM_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError, sqlite3.InterfaceError,
               OverflowError)


class Batcher:
    """Collects statements from concurrent handlers and commits them together. A handler's `submit` returns
    once its statements are committed (then its message may be acked) or raises why they were not. When a
    batch fails over one event's statements (ITEM_ERRORS), its items are retried one transaction each: the
    event that cannot be written fails alone instead of taking the events batched with it down too."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[list[Statement], asyncio.Future[None]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def submit(self, statements: list[Statement]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((statements, fut))
        await fut

    async def _loop(self) -> None:
        while True:
            items = [await self.queue.get()]
            while len(items) < self.max_batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            try:
                await self.store.write(s for stmts, _ in items for s in stmts)
                self.batches += 1
            except Exception as exc:
                if len(items) == 1 or not isinstance(exc, ITEM_ERRORS):  # e.g. locked, disk full: all retry later
                    for _, fut in items:
                        _settle(fut, exc)
                    continue
                for stmts, fut in items:  # the batch was rolled back: one transaction per item
                    try:
                        await self.store.write(stmts)
                    except Exception as item_exc:
                        _settle(fut, item_exc)
                    else:
                        _settle(fut, None)
                continue
            for _, fut in items:
                _settle(fut, None)


def _settle(fut: asyncio.Future[None], exc: Exception | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


class SinkAgent(Agent):
    role = "sink"
    consumes = ()
    consumes_everything = True  # every subject, dead letters and unknown types included
    default_concurrency = 256
    ack_wait_s = 30.0

    def __init__(self, ctx: AgentContext, settings: RoleSettings | None = None, *, db_path: Path | None = None) -> None:
        super().__init__(ctx, settings)
        self.db_path = db_path or ctx.data_dir / "gymforge.db"
        self.store: Store | None = None
        self.batcher: Batcher | None = None
        self.consumed_elsewhere: frozenset[str] = frozenset()

    async def start(self) -> None:
        from agents.roles import consumed_by_workers  # the registry imports this module

        # event types another role consumes: that role dead-letters them when invalid, the sink need not
        self.consumed_elsewhere = consumed_by_workers()
        self.store = await Store.open(self.db_path)
        self.batcher = Batcher(self.store)
        self.batcher.start()

    async def stop(self) -> None:
        if self.batcher:
            await self.batcher.stop()
        if self.store:
            await self.store.close()

    async def handle(self, event: Event) -> Sequence[Emit]:
        assert self.batcher is not None
        env = event.envelope
        statements = [ledger_row(env, event.subject, event.stream_seq, env.payload), *entity_rows(env, event.payload)]
        replay_of = event.headers.get(REPLAY_HEADER)
        if replay_of:
            statements.append(replayed_row(replay_of))
        await self.batcher.submit(statements)
        return []

    async def on_poison(self, msg: Msg, reason: str) -> bool:
        """Record the bad message in the ledger; dead-letter it only when no other role will."""
        assert self.batcher is not None
        seq = msg.metadata.sequence.stream if msg.metadata.sequence else None
        data = msg.data.decode("utf-8", errors="replace")[:100_000]
        now = datetime.now(UTC).isoformat()
        await self.batcher.submit([invalid_row(f"seq:{seq}", msg.subject, seq, reason, data, now)])
        event_type = type_of(msg.subject)
        return event_type not in self.consumed_elsewhere and not event_type.startswith("dead.")
