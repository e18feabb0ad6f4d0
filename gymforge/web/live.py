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
        self.last_seq: int | None = None  # the stream sequence of the last message passed on
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
                if await self._listen(self.bus):
                    continue  # reconnected: follow the stream again at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down or gone: the pages still show the store
                log.warning("live feed unavailable, retrying", error=str(exc) or type(exc).__name__)
            self.listening.clear()
            if self.bus is not None and self.bus.nc.is_closed:  # reconnects ran out: start over
                self.bus = None
            await asyncio.sleep(self.retry_s)

    async def _listen(self, bus: Bus) -> bool:
        """Follow the stream from the message after the last one seen; re-subscribe at once when the client
        reconnects (an ordered consumer would only notice its lost server-side half after missed heartbeats)."""
        if self.last_seq is None:
            self.last_seq = (await bus.js.stream_info(bus.settings.stream)).state.last_seq  # new messages only
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_seq + 1)
        sub = await bus.js.subscribe("gf.>", ordered_consumer=True, config=config)
        self.listening.set()
        reconnects = bus.nc.stats["reconnects"]
        pump = asyncio.create_task(self._pump(sub))
        try:
            while not pump.done():
                await asyncio.wait({pump}, timeout=0.5)
                if bus.nc.stats["reconnects"] != reconnects and bus.nc.is_connected:
                    self.listening.clear()
                    return True
            pump.result()
            return False
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _pump(self, sub: Any) -> None:
        async for msg in sub.messages:
            self.last_seq = msg.metadata.sequence.stream
            await self._publish(msg.subject, msg.data)

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
