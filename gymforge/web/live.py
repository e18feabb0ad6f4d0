"""The dashboard's bus side: one ordered, ephemeral consumer on `gf.>` from new messages, fanned out to
every open server-sent-events stream; and the live figures only the bus knows (consumer lag per role,
dead letters per subject, the budget limit in KV)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from nats.js import api

from agents.budget import BUCKET, KEY
from bus import Bus, Poison
from bus.codec import decode_envelope
from gymforge.app import connect
from gymforge.config import Settings
from gymforge.render import summary

log = structlog.get_logger("gymforge.web")
QUEUE_SIZE = 1000  # per client: a slow client loses its oldest events, never slows the feed


class LiveFeed:
    """Connects (and reconnects) to NATS in the background; `subscribe()` gives a queue of event dicts."""

    def __init__(self, settings: Settings, retry_s: float = 3.0) -> None:
        self.settings, self.retry_s = settings, retry_s
        self.bus: Bus | None = None
        self.clients: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.listening = asyncio.Event()  # the consumer exists: events published from now on arrive
        self._task: asyncio.Task[None] | None = None
        self.seen = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="web:live-feed")

    async def stop(self) -> None:
        for q in list(self.clients):
            _offer(q, None)  # ends every SSE stream
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.bus:
            with contextlib.suppress(Exception):
                await self.bus.close()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self.clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.clients.discard(q)

    @property
    def connected(self) -> bool:
        nc = getattr(self.bus, "nc", None)
        return bool(nc and nc.is_connected)

    async def _run(self) -> None:
        while True:
            try:
                if self.bus is None:
                    self.bus = await connect(self.settings, name="gymforge-web")
                sub = await self.bus.js.subscribe(
                    "gf.>", ordered_consumer=True, config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW))
                self.listening.set()
                async for msg in sub.messages:
                    await self._publish(msg.subject, msg.data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down or gone: the pages still show the store
                self.listening.clear()
                log.warning("live feed unavailable, retrying", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(self.retry_s)

    async def _publish(self, subject: str, data: bytes) -> None:
        item = await describe(self.bus, subject, data)  # type: ignore[arg-type]
        self.seen += 1
        for q in list(self.clients):
            _offer(q, item)


def _offer(q: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
    q.put_nowait(item)


async def describe(bus: Bus, subject: str, data: bytes) -> dict[str, Any]:
    """subject, id, type, a short summary: what one SSE event carries."""
    try:
        env = decode_envelope(data)
    except Poison as exc:
        return {"subject": subject, "id": None, "type": "invalid", "summary": f"undecodable: {exc}"[:300]}
    payload = env.payload
    if payload is None:  # a large payload travels by reference: fetch it for the summary
        try:
            payload = (await bus.resolve(data)).payload.model_dump(mode="json")
        except Poison:
            payload = {}
    return {"subject": subject, "id": env.id, "type": env.type, "trace_id": env.trace_id,
            "time": env.time.isoformat(), "producer": env.producer, "summary": summary(env.type, payload)[:300]}


def sse(item: dict[str, Any]) -> bytes:
    return f"event: gf\ndata: {json.dumps(item, separators=(',', ':'))}\n\n".encode()


# --- what only the bus knows -------------------------------------------------------------------------


async def bus_status(bus: Bus) -> dict[str, Any]:
    stream = bus.settings.stream
    info = await bus.js.stream_info(stream, subjects_filter="gf.>")
    subjects = info.state.subjects or {}
    consumers = sorted(
        ({"role": c.name, "pending": c.num_pending, "ack_pending": c.num_ack_pending,
          "redelivered": c.num_redelivered, "waiting": c.num_waiting}
         for c in await bus.js.consumers_info(stream) if c.config.durable_name),  # roles, not viewers
        key=lambda c: c["role"])
    return {"stream": {"messages": info.state.messages, "bytes": info.state.bytes}, "consumers": consumers,
            "dead_letters": {k: v for k, v in sorted(subjects.items()) if k.startswith("gf.dead.")}}


async def budget_limit(bus: Bus) -> dict[str, Any] | None:
    """The run-time limit set in KV (gf-config/budget), or None when none was set."""
    try:
        kv = await bus.js.key_value(BUCKET)
        entry = await kv.get(KEY)
    except Exception:  # no bucket, no key: the settings' limit applies
        return None
    return json.loads(entry.value) if entry.value else None
