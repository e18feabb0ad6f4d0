"""A deterministic test model for the solver loop (as mini-swe-agent's DeterministicModel): it answers
with the given replies in order and remembers every conversation it was sent. Not a model: a script."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents.llm import Completion
from domain.tokens import conversation_tokens, estimate


def bash(command: str, thought: str = "Next step.") -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```\n"


def tool_call(command: str, call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": "bash", "arguments": json.dumps({"command": command})}}


@dataclass
class ScriptedModel:
    replies: list[str | tuple[str, list[dict[str, Any]]] | Completion]  # text, (text, tool_calls), or as given
    cost_per_call: float = 0.0
    repeat_last: bool = True
    seen: list[list[dict[str, Any]]] = field(default_factory=list)

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        self.seen.append([dict(m) for m in messages])
        n = len(self.seen) - 1
        if n >= len(self.replies) and not self.repeat_last:
            raise AssertionError(f"the script has only {len(self.replies)} replies")
        reply = self.replies[min(n, len(self.replies) - 1)]
        if isinstance(reply, Completion):
            return reply
        text, calls = (reply, []) if isinstance(reply, str) else reply
        return Completion(text=text, prompt_tokens=conversation_tokens(messages), completion_tokens=estimate(text),
                          cost_usd=self.cost_per_call, latency_s=0.0, retries=0, tool_calls=calls)
