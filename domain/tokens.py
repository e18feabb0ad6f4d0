"""Token counts without a tokenizer: no BPE file can be fetched here, so counts are ESTIMATES.

One rule everywhere (the offline teacher's usage, the solver's context limit, the filter's token limit,
the SFT export's truncation): ceil(characters / 4), the usual English average for GPT-style BPE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CHARS_PER_TOKEN = 4


def estimate(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


def message_tokens(message: Mapping[str, Any]) -> int:
    """A chat message: its content, any reasoning_content and tool-call arguments, and a few tokens of framing."""
    total = estimate(str(message.get("content") or "")) + estimate(str(message.get("reasoning_content") or "")) + 4
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        total += estimate(str(fn.get("name", ""))) + estimate(str(fn.get("arguments", "")))
    return total


def conversation_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    return sum(message_tokens(m) for m in messages)
