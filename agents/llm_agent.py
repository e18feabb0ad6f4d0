"""An agent that asks a model: the LLM client, usage events, and bounded format corrections."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from agents.replies import CutOff, ReplyError
from agents.runtime import Agent, AgentContext, RoleSettings
from bus import Event, make_envelope
from domain.payloads import Usage
from prompts import render

T = TypeVar("T")
CURRENT_EVENT: contextvars.ContextVar[Event | None] = contextvars.ContextVar("current_event", default=None)


class LLMAgent(Agent):
    """A role that calls a model: its new work spends the budget."""

    model_kind: ClassVar[str] = "teacher"  # which configured endpoint: "teacher" or "solver"
    max_corrections: ClassVar[int] = 2
    spends_budget = True

    def __init__(self, ctx: AgentContext, settings: RoleSettings | None = None) -> None:
        super().__init__(ctx, settings)
        from agents.llm import LLM  # the openai SDK takes ~0.7 s to import: only where a model is called

        if ctx.models is None:
            raise TypeError(f"{self.role} calls a model: its AgentContext needs `models`")
        self.llm = LLM(ctx.models.endpoint(self.model_kind), self.role, prices=ctx.models.prices,
                       on_usage=self.publish_usage)

    async def stop(self) -> None:
        await self.llm.close()

    async def publish_usage(self, usage: Usage) -> None:
        event = CURRENT_EVENT.get()
        env = make_envelope("usage", usage, producer=self.role, parent=event.envelope if event else None,
                            key=uuid.uuid4().hex)
        await self.ctx.bus.publish(env)

    async def ask(self, messages: list[dict[str, Any]], purpose: str, parse: Callable[[str], T]) -> T:
        """Ask, parse; on a format error re-ask with a correction (bounded), then raise ReplyError. A reply
        cut off at the length limit is never parsed: it gets a correction of its own."""
        for attempt in range(self.max_corrections + 1):
            reply = await self.llm.complete(messages, purpose=purpose)
            try:
                if reply.cut_off:
                    raise CutOff
                return parse(reply.text)
            except ReplyError as exc:
                if attempt == self.max_corrections:
                    raise ReplyError(f"{exc} (still after {attempt} format corrections)") from None
                correction = render("cut_off") if isinstance(exc, CutOff) else render("format_correction",
                                                                                     problem=str(exc))
                messages = [*messages, {"role": "assistant", "content": reply.text},
                            {"role": "user", "content": correction}]
        raise AssertionError("unreachable")

    async def handle(self, event: Event) -> Any:
        token = CURRENT_EVENT.set(event)
        try:
            return await self.work(event)
        finally:
            CURRENT_EVENT.reset(token)

    async def work(self, event: Event) -> Any:
        raise NotImplementedError
