"""An agent that asks a model: the LLM client, usage events, and bounded format corrections."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from agents.replies import CutOff, ReplyError
from agents.runtime import Agent, AgentContext, RoleSettings
from bus import Event, make_envelope
from domain.payloads import Usage
from prompts import render

if TYPE_CHECKING:
    from agents.llm import LLM, Models, UsageSink

T = TypeVar("T")
CURRENT_EVENT: contextvars.ContextVar[Event | None] = contextvars.ContextVar("current_event", default=None)


class LLMAgent(Agent):
    """A role that calls a model: its new work spends the budget."""

    model_kind: ClassVar[str] = "teacher"  # which configured endpoint: "teacher" or "solver"
    max_corrections: ClassVar[int] = 2
    spends_budget = True

    def __init__(self, ctx: AgentContext, settings: RoleSettings | None = None) -> None:
        super().__init__(ctx, settings)
        if ctx.models is None:
            raise TypeError(f"{self.role} calls a model: its AgentContext needs `models`")
        self.llm = role_llm(self.role, self.model_kind, ctx.models, self.settings, on_usage=self.publish_usage)

    async def stop(self) -> None:
        await self.llm.close()

    async def publish_usage(self, usage: Usage) -> None:
        event = CURRENT_EVENT.get()
        env = make_envelope("usage", usage, producer=self.role, parent=event.envelope if event else None,
                            key=uuid.uuid4().hex)
        await self.ctx.bus.publish(env)

    async def ask(self, messages: list[dict[str, Any]], purpose: str, parse: Callable[[str], T],
                  schema: str | None = None) -> T:
        """Ask, parse; on a format error re-ask with a correction (bounded), then raise ReplyError. With a
        `schema` (agents/schemas.py) the reply is asked for as structured output where the role's
        `structured_output` setting and the endpoint allow (agents/structured.py). A reply cut off at the
        length limit is never parsed: it gets a correction of its own."""
        from agents import structured

        mode = getattr(self.settings, "structured_output", "off")
        for attempt in range(self.max_corrections + 1):
            reply = await structured.complete(self.llm, messages, purpose, schema, mode)
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


def role_llm(role: str, kind: str, models: Models, settings: RoleSettings,
             on_usage: UsageSink | None = None) -> LLM:
    """A role's model client: its kind's endpoint ("teacher" or "solver") with the role's own model and
    request options (agents/model_options.py) when it declares them."""
    from agents.llm import LLM  # the openai SDK takes ~0.7 s to import: only where a model is called
    from agents.model_options import ModelSettings

    endpoint = models.endpoint(kind)
    if not isinstance(settings, ModelSettings):
        return LLM(endpoint, role, prices=models.prices, on_usage=on_usage)
    if settings.model:
        endpoint = replace(endpoint, model=settings.model)
    return LLM(endpoint, role, prices=models.prices, on_usage=on_usage, options=settings.request_options())
