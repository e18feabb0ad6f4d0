"""Structured output with a fallback: a reply that has a JSON schema (agents/schemas.py) is asked for with
`response_format` json_schema; an endpoint that refuses it (a 400/422 naming response_format, json_schema
or "not supported") is asked in text from then on. The refusal is remembered per endpoint and model for
the process and logged once."""

from __future__ import annotations

from typing import Any

import structlog

from agents import schemas
from agents.llm import LLM, Completion, ModelRefused

log = structlog.get_logger("gymforge.llm")
REFUSED: set[tuple[str, str]] = set()  # (base URL, model) that refused a json_schema response_format
REFUSAL_WORDS = ("response_format", "json_schema", "not supported")


def refuses_schema(exc: ModelRefused) -> bool:
    text = str(exc).lower()
    return exc.status_code in (400, 422) and any(w in text for w in REFUSAL_WORDS)


def _key(llm: LLM) -> tuple[str, str]:
    return llm.endpoint.base_url, llm.endpoint.model


def wanted(llm: LLM, schema: str | None, mode: str) -> dict[str, Any] | None:
    """The response_format to send: None without a schema, with the setting off, or when this endpoint and
    model refused it before."""
    if schema is None or mode == "off" or _key(llm) in REFUSED:
        return None
    return schemas.response_format(schema)


async def complete(llm: LLM, messages: list[dict[str, Any]], purpose: str, schema: str | None,
                   mode: str = "auto") -> Completion:
    """One completion, asked for in the schema where the role (mode) and the endpoint allow."""
    fmt = wanted(llm, schema, mode)
    if fmt is None:
        return await llm.complete(messages, purpose=purpose)
    try:
        return await llm.complete(messages, purpose=purpose, response_format=fmt)
    except ModelRefused as exc:
        if not refuses_schema(exc):
            raise
        if _key(llm) not in REFUSED:
            REFUSED.add(_key(llm))
            log.warning("structured output refused: asking in text from now on", role=llm.role,
                        model=llm.endpoint.model, error=str(exc)[:300])
    return await llm.complete(messages, purpose=purpose)
