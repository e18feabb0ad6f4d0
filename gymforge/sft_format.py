"""A trajectory (domain.trajectory) -> chat messages for supervised fine-tuning. Pure: no I/O.

The conversation is the trajectory's `history` (the clean one: bad-format replies are not in it):
system, user (the task instance), then assistant turns (the step's reply: thought and action block, or in
tool-call mode the thought with one `bash` tool call) alternating with observations (role `user`, or
`tool` in tool-call mode). A conversation always ends with an assistant turn: a trailing observation
(what the last action printed) is dropped, since there is nothing to learn from it.

Lengths are ESTIMATED with domain.tokens (ceil(chars/4)), the one estimator of the project. Truncation
keeps whole turns: it drops trailing (observation, assistant) pairs until the conversation fits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from domain.tokens import conversation_tokens, message_tokens
from domain.trajectory import HistoryMessage, Trajectory

TOKEN_ESTIMATOR = "estimated ceil(chars/4)"
TOOL_CALL = "tool_call"
OBSERVATION_ROLES = ("user", "tool")

# The one tool the solver offers in tool-call mode (the contract's request body).
BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run one shell command in the task's workspace and return its output.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    },
}

# Reasons a trajectory yields no example (the manifest counts them).
TOO_LONG = "too_long"
MALFORMED = "malformed"


class Unusable(Exception):
    """This trajectory gives no training example; `reason` is one of TOO_LONG, MALFORMED."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Conversation:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # the tool specs, in tool-call mode only
    tokens: int  # estimated, of `messages`
    truncated: bool


def parse(text: str | bytes) -> Trajectory:
    """A stored trajectory (its JSON text) as the model. Raises Unusable(MALFORMED) when it is not one."""
    try:
        return Trajectory.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the top level"
        raise Unusable(MALFORMED, f"not a trajectory: {first['msg']} at {where}") from None


def is_tool_mode(traj: Trajectory) -> bool:
    fmt = traj.replay_config.get("action_format")
    if fmt:
        return fmt == TOOL_CALL
    return any(m.tool_calls for m in traj.history)


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": str(call.get("id") or ""), "type": "function",
            "function": {"name": str(fn.get("name") or ""), "arguments": args}}


def assistant_text(m: HistoryMessage) -> str:
    """The reply as the model wrote it; rebuilt from thought and action only if the content is empty."""
    if m.content or m.tool_calls:
        return m.content
    thought, action = (m.thought or "").strip(), m.action or ""
    return f"THOUGHT: {thought}\n\n```bash\n{action}\n```\n" if action else thought


def clean(m: HistoryMessage) -> dict[str, Any]:
    """A history item as a chat message: role, content, and the tool-call fields; nothing else."""
    role = m.role
    if role == "assistant":
        out: dict[str, Any] = {"role": role, "content": assistant_text(m)}
        if m.tool_calls:
            out["tool_calls"] = [tool_call(c) for c in m.tool_calls]
        return out
    if role == "tool":
        return {"role": role, "tool_call_id": m.tool_call_id or "", "content": m.content}
    return {"role": role, "content": m.content}


def check_shape(history: Sequence[HistoryMessage]) -> None:
    if not history:
        raise Unusable(MALFORMED, "history is empty")
    if history[0].role != "system" or len(history) < 2 or history[1].role != "user":
        raise Unusable(MALFORMED, "history does not start with the system prompt and the task instance")
    for i, m in enumerate(history[2:]):
        want = ("assistant",) if i % 2 == 0 else OBSERVATION_ROLES
        if m.role not in want:
            raise Unusable(MALFORMED, f"history message {i + 2} is {m.role!r}, expected {' or '.join(want)}")


def messages_of(traj: Trajectory) -> list[dict[str, Any]]:
    """The clean conversation, ending with the last assistant turn."""
    history = traj.history
    check_shape(history)
    messages = [clean(m) for m in history]
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    if len(messages) < 3:
        raise Unusable(MALFORMED, "the history holds no assistant turn")
    return messages


def fit(messages: list[dict[str, Any]], max_tokens: int) -> list[dict[str, Any]]:
    """The longest prefix ending with an assistant turn whose estimate is within `max_tokens`."""
    total, best = 0, 0
    for i, m in enumerate(messages):
        total += message_tokens(m)
        if total > max_tokens:
            break
        if m["role"] == "assistant":
            best = i + 1
    if best == 0:
        raise Unusable(TOO_LONG, f"the first assistant turn alone needs more than {max_tokens} estimated tokens")
    return messages[:best]


def conversation(traj: Trajectory, max_tokens: int) -> Conversation:
    """The trajectory as a training conversation within `max_tokens` (estimated). Raises Unusable."""
    full = messages_of(traj)
    kept = fit(full, max_tokens)
    tools = [BASH_TOOL] if is_tool_mode(traj) else None
    return Conversation(messages=kept, tools=tools, tokens=conversation_tokens(kept),
                        truncated=len(kept) < len(full))


METADATA_FIELDS = ("task_id", "attempt", "status", "score", "baseline_score", "gain", "metric", "direction",
                   "exit_status", "solve_rate", "tokens", "truncated")


def metadata(row: dict[str, Any], traj: Trajectory, conv: Conversation) -> dict[str, Any]:
    """Flat metadata of one example: the store row (the trajectory's info fills what the row lacks) and the
    exported conversation's size."""
    info = traj.info
    return {
        "task_id": row["task_id"],
        "attempt": int(row["attempt"]),
        "status": row["status"],
        "score": _num(row.get("score")),
        "baseline_score": _num(row.get("baseline_score")),
        "gain": _num(row.get("gain")),
        "metric": row.get("metric") or info.metric,
        "direction": row.get("direction") or info.direction,
        "exit_status": row.get("exit_status") or info.exit_status,
        "solve_rate": _num(row.get("solve_rate")),
        "tokens": conv.tokens,
        "truncated": conv.truncated,
    }


def _num(value: Any) -> float | None:
    return None if value is None else float(value)
