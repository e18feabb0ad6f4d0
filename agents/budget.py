"""The spend budget: every process sums `gf.usage` from the stream and stops taking new model work once
the limit is spent. The limit comes from settings and can be changed at run time through the JetStream
KV bucket `gf-config` (key `budget`, JSON {"usd": float|null, "tokens": int|null}); every replica sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

import structlog
from nats.js import api

from bus import Bus, subject_for
from bus.errors import Poison
from domain.payloads import Usage

log = structlog.get_logger("gymforge.budget")
BUCKET, KEY = "gf-config", "budget"


@dataclass
class Limit:
    usd: float | None = None
    tokens: int | None = None


class BudgetWatcher:
    def __init__(self, bus: Bus, default: Limit) -> None:
        self.bus, self.limit = bus, default
        self.spent_usd, self.spent_tokens = 0.0, 0
        self._tasks: list[asyncio.Task[None]] = []
        self._announced: str | None = None

    async def start(self) -> None:
        kv = await self.bus.js.create_key_value(bucket=BUCKET, history=1)
        with contextlib.suppress(Exception):
            entry = await kv.get(KEY)
            self._apply(entry.value)
        sub = await self.bus.js.subscribe(subject_for("usage"), ordered_consumer=True,
                                          config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL))
        watcher = await kv.watch(KEY, include_history=False)
        self._tasks = [asyncio.create_task(self._sum(sub)), asyncio.create_task(self._watch(watcher))]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _apply(self, raw: bytes | None) -> None:
        if raw:
            value = json.loads(raw)
            self.limit = Limit(usd=value.get("usd"), tokens=value.get("tokens"))
            log.info("budget set", usd=self.limit.usd, tokens=self.limit.tokens)

    async def _watch(self, watcher) -> None:  # noqa: ANN001 - nats KeyWatcher
        async for entry in watcher:
            if entry is not None and entry.key == KEY:
                self._apply(entry.value)

    async def _sum(self, sub) -> None:  # noqa: ANN001 - nats Subscription
        async for msg in sub.messages:
            try:
                usage = await self.bus.resolve(msg.data, "usage")
            except Poison:
                continue
            u: Usage = usage.payload  # type: ignore[assignment]
            self.spent_usd += u.cost_usd
            self.spent_tokens += u.prompt_tokens + u.completion_tokens

    def exhausted(self) -> str | None:
        """A reason to stop taking new work, or None."""
        reason = None
        if self.limit.usd is not None and self.spent_usd >= self.limit.usd:
            reason = f"budget spent: ${self.spent_usd:.4f} of ${self.limit.usd:.4f}"
        elif self.limit.tokens is not None and self.spent_tokens >= self.limit.tokens:
            reason = f"budget spent: {self.spent_tokens} of {self.limit.tokens} tokens"
        if reason != self._announced:
            (log.warning("new model work paused", reason=reason) if reason
             else log.info("budget available again", spent_tokens=self.spent_tokens))
            self._announced = reason
        return reason


async def set_budget(bus: Bus, limit: Limit) -> None:
    kv = await bus.js.create_key_value(bucket=BUCKET, history=1)
    await kv.put(KEY, json.dumps({"usd": limit.usd, "tokens": limit.tokens}).encode())
