"""The request options of a role that calls a model, declared once: every model role's Settings derives
from `ModelSettings` (the keys are `<role>_model`, `<role>_reasoning_effort`, ...). An option left unset
is not sent: reasoning models reject a `temperature`, older ones a `reasoning_effort`."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from agents.llm import RequestOptions
from agents.runtime import RoleSettings

ReasoningEffort = Literal["minimal", "low", "medium", "high"]


class ModelSettings(RoleSettings):
    model: str | None = Field(None, description="the role's model (default: teacher_model; the solver's: the "
                              "model of its endpoint)")
    reasoning_effort: ReasoningEffort | None = Field(None, description="minimal, low, medium or high "
                                                     "(unset: not sent)")
    max_completion_tokens: int | None = Field(None, ge=1, description="a reply's token limit, thinking "
                                              "included (unset: not sent)")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="sampling temperature (unset: not sent)")
    extra_body: dict[str, Any] | None = Field(None, description="merged into every request body, e.g. "
                                              '{"chat_template_kwargs": {"enable_thinking": false}}; a JSON '
                                              "object in the environment")

    @field_validator("extra_body", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc})") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object")
        return value

    def request_options(self) -> RequestOptions:
        return RequestOptions(reasoning_effort=self.reasoning_effort,
                              max_completion_tokens=self.max_completion_tokens, temperature=self.temperature,
                              extra_body=dict(self.extra_body or {}))


class StructuredModelSettings(ModelSettings):
    """A role whose reply has a JSON schema (agents/schemas.py): it may ask for structured output."""

    structured_output: Literal["auto", "off"] = Field(
        "auto", description="auto: ask for the reply's JSON schema (response_format), falling back to text "
        "when the endpoint refuses it; off: text only")
