"""The shared agent runtime: the Agent base (a role's one declaration), the runner that binds it to the
bus, and the supervisor.

A role is a small class that declares everything about itself: its name, the payload types it consumes
and produces, whether its new work spends model budget, its ack wait and default concurrency, and a typed
settings model (`Settings`) with every knob it reads; `handle(event)` returns what to publish. The
registry (agents/roles.py), the configuration's keys and the sink's view of who consumes what are derived
from these declarations. Everything else — the consume loop, concurrency, the ack policy, heartbeats,
logging context, graceful shutdown — is here and in bus/, written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js.errors import ServiceUnavailableError
from pydantic import BaseModel, ConfigDict, Field

from bus import Bus, Consumer, ConsumerSpec, Envelope, Event, RetryPolicy, make_envelope, subject_for
from domain.payloads import EventPayload

if TYPE_CHECKING:
    from agents.llm import Models

log = structlog.get_logger("gymforge.agents")

# What a start-up step (a KV bucket, the durable consumer) meets while NATS restarts or JetStream recovers
NATS_NOT_READY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionReconnectingError,
                  nats.errors.StaleConnectionError, ServiceUnavailableError)


@dataclass(frozen=True)
class Emit:
    """One output of a handler: its event type is the payload's; its id is derived from the input's id,
    that type and `key`."""

    payload: EventPayload
    key: str | int = 0
    new_trace: bool = False
    event_id: str | None = None  # set when the id must not depend on the input (e.g. one per task)

    @property
    def type(self) -> str:
        return self.payload.event_type


@dataclass
class AgentContext:
    """What an agent gets from the process that runs it: connections and services, not settings."""

    bus: Bus
    data_dir: Path
    gate: Callable[[], str | None] | None = None  # a reason to stop taking new work (e.g. budget spent)
    models: Models | None = None  # the model endpoints and prices (roles that call a model)


class RoleSettings(BaseModel):
    """A role's knobs. In the configuration each is `<role>_<field>` (or the field's alias): TOML, the
    environment (`GYMFORGE_<KEY>`) or flags. A field whose type is a shared section (SandboxSettings,
    HubSettings) is filled from that section instead."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    concurrency: int | None = Field(None, ge=1, description="messages handled at once (default: the role's own)")


class Agent:
    """A role. Subclasses declare the ClassVars below and implement `handle`."""

    role: ClassVar[str]
    consumes: ClassVar[tuple[type[EventPayload], ...]]
    produces: ClassVar[tuple[type[EventPayload], ...]] = ()
    consumes_everything: ClassVar[bool] = False  # every subject (the sink), whatever `consumes` says
    spends_budget: ClassVar[bool] = False  # new work pauses while the model budget is spent
    runs_task_code: ClassVar[bool] = False  # runs task code in the sandbox: needs the task runtime's packages
    ack_wait_s: ClassVar[float] = 60.0
    default_concurrency: ClassVar[int] = 4
    Settings: ClassVar[type[RoleSettings]] = RoleSettings

    def __init__(self, ctx: AgentContext, settings: RoleSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings if settings is not None else self.Settings()
        if not isinstance(self.settings, self.Settings):
            raise TypeError(f"{self.role} takes {self.Settings.__name__}, not {type(self.settings).__name__}")

    @classmethod
    def subjects(cls) -> list[str]:
        if cls.consumes_everything:
            return [subject_for(">")]
        return [subject_for(p.event_type) for p in cls.consumes]

    async def start(self) -> None:
        """Open resources (clients, sandboxes, stores)."""

    async def stop(self) -> None:
        """Release them; called after the consumer has drained."""

    async def handle(self, event: Event) -> Sequence[Emit]:
        raise NotImplementedError

    async def on_poison(self, msg: Msg, reason: str) -> bool:
        """Called for a message that can never be handled. True = publish it as a dead letter."""
        return True

    @property
    def durable(self) -> str:
        return self.role


class AgentRunner:
    """Binds one agent to its durable consumer. `concurrency` and `ack_wait_s` override the role's own
    (a flag, then its settings, then its declaration)."""

    startup_patience_s: ClassVar[float] = 120.0  # how long start-up waits out NATS not answering

    def __init__(self, agent: Agent, *, concurrency: int | None = None, retry: RetryPolicy | None = None,
                 ack_wait_s: float | None = None) -> None:
        self.agent = agent
        self.stopping = asyncio.Event()
        self.declared = frozenset(p.event_type for p in agent.produces)
        concurrency = concurrency or agent.settings.concurrency or agent.default_concurrency
        spec = ConsumerSpec(
            durable=agent.durable,
            filter_subjects=agent.subjects(),
            ack_wait_s=ack_wait_s or agent.ack_wait_s,
            max_ack_pending=max(1000, 4 * concurrency),
        )
        self.consumer = Consumer(
            agent.ctx.bus, spec, agent.role, self._handle,
            concurrency=concurrency, retry=retry,
            on_poison=agent.on_poison, gate=agent.ctx.gate if agent.spends_budget else None,
        )

    async def _handle(self, event: Event) -> list[Envelope]:
        # each message runs in its own task (a copied context): binding without a reset is enough
        structlog.contextvars.bind_contextvars(role=self.agent.role, subject=event.subject, event_id=event.id,
                                               trace_id=event.trace_id)
        emits = await self.agent.handle(event)
        for e in emits:
            if e.type not in self.declared:  # a programming error: the declaration is what the graph is checked on
                raise TypeError(f"{self.agent.role} emitted {e.type}, which it does not declare in produces")
        return [
            make_envelope(e.type, e.payload, producer=self.agent.role, parent=event.envelope, key=e.key,
                          new_trace=e.new_trace, event_id=e.event_id)
            for e in emits
        ]

    async def run(self) -> None:
        if not await self._starting("start", self.agent.start):
            return
        try:
            await self._starting("consume", self.consumer.run)
        finally:
            await self.consumer.settled()  # the model client and sandbox stay open for in-flight work
            await self.agent.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.consumer.stop()

    async def _starting(self, step: str, run: Callable[[], Awaitable[None]]) -> bool:
        """Run a step that opens NATS resources. NATS restarting (requests time out, JetStream not ready yet)
        is waited out with backoff for up to startup_patience_s instead of ending the daemon. False when
        stopped meanwhile."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.startup_patience_s, 0.5
        while True:
            try:
                await run()
                return True
            except NATS_NOT_READY as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning("NATS not ready, retrying", role=self.agent.role, step=step,
                            error=type(exc).__name__, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return False
            delay = min(2 * delay, 5.0)


class Supervisor:
    """Runs many agents in one process; SIGINT/SIGTERM stops fetching, lets in-flight work finish within
    `grace_s`, leaves the rest un-acked for redelivery, then drains the connection."""

    def __init__(self, runners: Sequence[AgentRunner], *, grace_s: float = 20.0) -> None:
        self.runners = list(runners)
        self.grace_s = grace_s
        self.stopped = asyncio.Event()

    def request_stop(self) -> None:
        self.stopped.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> None:
        tasks = [asyncio.create_task(r.run(), name=f"agent:{r.agent.role}") for r in self.runners]
        stop_wait = asyncio.create_task(self.stopped.wait())
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stop_wait and t.exception() is not None]
        await self.shutdown()
        stop_wait.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failed:
            raise failed[0].exception()  # type: ignore[misc]

    async def shutdown(self) -> None:
        for r in self.runners:
            r.stop()
        cancelled = await asyncio.gather(*(r.consumer.drain(self.grace_s) for r in self.runners))
        if any(cancelled):
            log.warning("shutdown left work un-acked for redelivery", cancelled=sum(cancelled))

    def consuming(self) -> bool:
        return all(r.consumer.consuming for r in self.runners)
