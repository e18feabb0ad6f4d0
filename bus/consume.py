"""The consume loop: fetch from a durable pull consumer, run a handler per message with bounded
concurrency, publish its outputs, then settle the message by the policy in bus/acks.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js.errors import FetchTimeoutError

from bus.acks import Action, Decision, RetryPolicy, apply, before_handling, decide
from bus.codec import DeadLetter, Envelope, Event, derive_id, make_envelope, type_of
from bus.connection import Bus, ConsumerSpec
from bus.errors import Transient

log = structlog.get_logger("gymforge.bus")

Handler = Callable[[Event], Awaitable[Sequence[Envelope]]]
PoisonHook = Callable[[Msg, str], Awaitable[bool]]  # returns True when the message should still be dead-lettered
Gate = Callable[[], str | None]  # returns a reason to pause fetching, or None


@dataclass
class Stats:
    handled: int = 0
    failed: int = 0
    dead: int = 0
    in_flight: int = 0
    durations: list[float] = field(default_factory=list)


class Consumer:
    """Runs `handler` for every message of one durable consumer until `stop()`."""

    def __init__(
        self,
        bus: Bus,
        spec: ConsumerSpec,
        role: str,
        handler: Handler,
        *,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        on_poison: PoisonHook | None = None,
        gate: Gate | None = None,
        fetch_timeout_s: float = 1.0,
    ) -> None:
        self.bus, self.spec, self.role, self.handler = bus, spec, role, handler
        self.concurrency = max(1, concurrency)
        self.retry = retry or RetryPolicy()
        self.on_poison, self.gate = on_poison, gate
        self.fetch_timeout_s = fetch_timeout_s
        self.stats = Stats()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        # messages whose handler is running -> [msg, loop time of its last sign of life]; one ticker task
        # sends their heartbeats, and only runs while there are any
        self._beating: dict[int, list] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.consuming = False
        self._debug = True  # whether debug lines are written; refreshed before each batch

    async def run(self) -> None:
        await self.bus.ensure_consumer(self.spec)
        sub = await self.bus.js.pull_subscribe_bind(durable=self.spec.durable, stream=self.bus.settings.stream)
        paused_reason: str | None = None
        try:
            while not self._stopping.is_set():
                reason = self.gate() if self.gate else None
                if reason != paused_reason:
                    log.warning("paused", role=self.role, reason=reason) if reason else log.info("resumed", role=self.role)
                    paused_reason = reason
                if reason:
                    await self._sleep(1.0)
                    continue
                await self._fetch_and_dispatch(sub)
        finally:
            self.consuming = False
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _fetch_and_dispatch(self, sub: object) -> None:
        free = await self._wait_free_slots()
        if free == 0:
            return
        try:
            msgs = await sub.fetch(batch=free, timeout=self.fetch_timeout_s)  # type: ignore[attr-defined]
            self.consuming = True
        except (FetchTimeoutError, nats.errors.TimeoutError, TimeoutError):
            self.consuming = True
            return
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.NoServersError, nats.errors.Error) as exc:
            self.consuming = False
            log.warning("fetch failed", role=self.role, error=str(exc) or type(exc).__name__)
            await self._sleep(0.5)
            return
        self._debug = _debug_enabled()
        for msg in msgs:
            await self._slots.acquire()
            task = asyncio.create_task(self._process(msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    async def _wait_free_slots(self) -> int:
        await self._slots.acquire()
        self._slots.release()
        return self._slots._value  # noqa: SLF001 - the semaphore's free count is what we need

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        """Stop fetching; in-flight handlers go on until `drain`."""
        self._stopping.set()

    async def settled(self) -> None:
        """Return once no handler is running (after `drain` let them finish or cancelled them)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, grace_s: float) -> int:
        """Wait up to grace_s for in-flight handlers; cancel the rest (they stay un-acked). Returns #cancelled."""
        self.stop()
        pending = set(self._tasks)
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=grace_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
        return len(still)

    # --- one message ------------------------------------------------------------------------

    async def _process(self, msg: Msg) -> None:
        deliveries = msg.metadata.num_delivered or 1
        seq = msg.metadata.sequence.stream if msg.metadata.sequence else None
        # log context as a plain dict: a logger is only bound where a line is actually written
        ctx: dict[str, object] = {"role": self.role, "subject": msg.subject, "stream_seq": seq, "delivery": deliveries}
        self.stats.in_flight += 1
        try:
            decision = before_handling(deliveries, self.retry) or await self._handle(msg, deliveries, seq, ctx)
            if decision.dead_letter is not None:
                await self._dead_letter(msg, decision, deliveries, ctx)
            await apply(msg, decision)
        except asyncio.CancelledError:
            log.info("cancelled, left un-acked for redelivery", **ctx)
            raise
        finally:
            self.stats.in_flight -= 1

    async def _handle(self, msg: Msg, deliveries: int, seq: int | None, ctx: dict[str, object]) -> Decision:
        loop = asyncio.get_running_loop()
        started = loop.time()
        error: BaseException | None = None
        self._beat_while_handling(msg, started)
        try:
            event = await self.bus.resolve(msg.data, type_of(msg.subject), subject=msg.subject, stream_seq=seq,
                                           deliveries=deliveries, headers=dict(msg.headers) if msg.headers else {})
            ctx["event_id"], ctx["trace_id"] = event.id, event.trace_id
            outputs = await self.handler(event)
            # every output is acked by JetStream before the input is
            await self.bus.publish_all(outputs if isinstance(outputs, list) else list(outputs))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the policy decides; nothing escapes the loop
            error = exc
        finally:
            self._handled(msg)
        decision = decide(error, deliveries, self.retry)
        self._record(decision, error, loop.time() - started, ctx)
        return decision

    def _record(self, d: Decision, error: BaseException | None, took: float, ctx: dict[str, object]) -> None:
        if d.action is Action.ACK:
            self.stats.handled += 1
            self.stats.durations.append(took)
            if len(self.stats.durations) > 1000:
                del self.stats.durations[:500]
            if self._debug:  # binding a logger per message only to drop the line is most of its cost
                log.debug("handled", took_s=round(took, 4), **ctx)
        elif d.dead_letter is not None:
            self.stats.dead += 1
            log.warning("dead letter", reason=d.dead_letter, **ctx)
        else:
            self.stats.failed += 1
            unexpected = not isinstance(error, Transient)
            log.warning("retry later", error=str(error), error_type=type(error).__name__, delay_s=d.delay,
                        exc_info=error if unexpected else None, **ctx)

    # --- heartbeats: one ticker for every message whose handler is running ------------------

    def _beat_while_handling(self, msg: Msg, now: float) -> None:
        self._beating[id(msg)] = [msg, now]
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._heartbeats())

    def _handled(self, msg: Msg) -> None:
        del self._beating[id(msg)]
        if not self._beating and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _heartbeats(self) -> None:
        """Every message gets an in-progress at most `interval` (ack_wait/3) after it started or after its
        last one: ticks come every interval/2 and touch the messages quiet for at least that long."""
        loop = asyncio.get_running_loop()
        tick = max(0.5, self.spec.ack_wait_s / 3) / 2
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            quiet_since = now - tick * 0.95  # timers may fire a hair early
            for entry in list(self._beating.values()):
                msg, last = entry
                if last <= quiet_since:
                    entry[1] = now
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _dead_letter(self, msg: Msg, d: Decision, deliveries: int, ctx: dict[str, object]) -> None:
        reason = d.dead_letter or "unknown"
        if self.on_poison is not None and not await self.on_poison(msg, reason):
            return
        seq = msg.metadata.sequence.stream if msg.metadata.sequence else 0
        await publish_dead_letter(self.bus, self.role, msg.subject, msg.data, msg.headers, reason, deliveries, seq)
        log.warning("sent to dead letters", reason=reason, **ctx)


def _debug_enabled() -> bool:
    check = getattr(log.bind(), "is_enabled_for", None)  # filtering and stdlib loggers have it
    return True if check is None else bool(check(logging.DEBUG))


async def publish_dead_letter(
    bus: Bus, role: str, subject: str, data: bytes, headers: dict[str, str] | None,
    reason: str, deliveries: int, stream_seq: int | None,
) -> Envelope:
    """Publish the original message and the reason on gf.dead.<role> (idempotent per stream sequence)."""
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode(), "base64"
    letter = DeadLetter(
        role=role, reason=reason, subject=subject, data=text, data_encoding=encoding,  # type: ignore[arg-type]
        headers=dict(headers or {}), deliveries=deliveries, stream_seq=stream_seq,
    )
    event_type = f"dead.{role}"
    env = make_envelope(event_type, letter, producer=role,
                        event_id=derive_id(f"{subject}#{stream_seq}", event_type, 0))
    await bus.publish(env)
    return env

