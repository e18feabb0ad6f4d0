"""A trajectory (domain.trajectory) -> chat messages for supervised fine-tuning. Pure: no I/O.

The conversation is the trajectory's `history` (the clean one: bad-format replies are not in it):
system, user (the task instance), then turns: an assistant reply (thought and action block, or in
tool-call mode the thought with one `bash` tool call) and its observation (role `user`, or `tool` in
tool-call mode). A conversation ends with the final assistant reply (for a submitted episode, the
`submit`): its observation teaches nothing, and fine-tuning APIs train on assistant messages. Every
earlier reply comes with its observation.

Lengths are ESTIMATED with domain.tokens (ceil(chars/4)), the one estimator of the project. Truncation
keeps the system prompt, the task and the final turns, from the last `submit` (or the last turn, when
there is none) to the end; it drops whole turns from the middle, oldest first, and says how many in a
note appended to the task message (a message of its own would put two user messages in a row, which
breaks the user/assistant alternation chat templates and fine-tuning formats expect). Nothing is cut
inside a message. When the system prompt, the task and those final turns alone do not fit, the
trajectory gives no example (TOO_LONG).

A tool call's `arguments` is written as an object, `{"command": ...}` (TRL and `datasets`: chat templates
serialise it themselves, and would encode a JSON string twice), or as JSON text (OpenAI's format); either
is read from whatever the provider recorded (an object, JSON text, JSON text encoded twice).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.replies import canonical_arguments
from domain.tokens import conversation_tokens, estimate
from domain.trajectory import HistoryMessage, Trajectory

TOKEN_ESTIMATOR = "estimated ceil(chars/4)"
MAX_LENGTH_MARGIN = 1.25  # max_length_for: the longest estimate times this, ...
MAX_LENGTH_STEP = 1024  # ... rounded up to a multiple of this
MAX_LENGTH_RULE = f"the longest example's estimate x {MAX_LENGTH_MARGIN}, rounded up to a multiple of {MAX_LENGTH_STEP}"
TOOL_CALL = "tool_call"
SUBMIT = "submit"
OBSERVATION_ROLES = ("user", "tool")
DROPPED_NOTE = ("[{n} earlier {turns} of this episode (a command and its output each) "
                "left out to fit the length limit]")

Message = dict[str, Any]
Turn = list[Message]  # an assistant reply and its observation

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
REASONING = ("drop", "keep")  # the model's thinking: left out of the examples, or kept as reasoning_content
ARGUMENTS = ("object", "string")  # a tool call's arguments: an object (TRL, datasets) or JSON text (OpenAI)


class Unusable(Exception):
    """This trajectory gives no training example; `reason` is one of TOO_LONG, MALFORMED."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Conversation:
    messages: list[Message]
    tools: list[dict[str, Any]] | None  # the tool specs, in tool-call mode only
    tokens: int  # estimated, of `messages`
    dropped_turns: int  # turns left out by truncation

    @property
    def truncated(self) -> bool:
        return self.dropped_turns > 0


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


def arguments_object(args: Any, action: str | None) -> dict[str, Any]:
    """The bash call's arguments as an object, `{"command": ...}`: the command the model wrote (its
    arguments given as an object, a JSON string, or a JSON string encoded twice:
    agents.replies.canonical_arguments), else the recorded action."""
    try:
        value = json.loads(canonical_arguments(args) or "null")
    except json.JSONDecodeError:
        value = None
    command = value.get("command") if isinstance(value, dict) else None
    return {"command": command if isinstance(command, str) else (action or "")}


def arguments_text(args: Any, action: str | None) -> str:
    """The arguments as one JSON-encoded object (OpenAI's form): the model's own string when it is one."""
    if isinstance(args, str):
        try:
            if isinstance(json.loads(args), dict):
                return args
        except json.JSONDecodeError:
            pass  # not JSON: the object below, built from the recorded action
    return json.dumps(arguments_object(args, action), ensure_ascii=False)


def tool_call(call: dict[str, Any], action: str | None = None, arguments: str = "string") -> dict[str, Any]:
    """A stored tool call in the chat shape; `arguments` "object" (TRL: chat templates serialise it
    themselves, and double-encode a string) or "string" (OpenAI's fine-tuning format)."""
    fn = call.get("function") or {}
    raw = fn.get("arguments", "")
    args = arguments_object(raw, action) if arguments == "object" else arguments_text(raw, action)
    return {"id": str(call.get("id") or ""), "type": "function",
            "function": {"name": str(fn.get("name") or ""), "arguments": args}}


def assistant_text(m: HistoryMessage) -> str:
    """The reply as the model wrote it; rebuilt from thought and action only if the content is empty."""
    if m.content or m.tool_calls:
        return m.content
    thought, action = (m.thought or "").strip(), m.action or ""
    return f"THOUGHT: {thought}\n\n```bash\n{action}\n```\n" if action else thought


def clean(m: HistoryMessage, reasoning: str = "drop", arguments: str = "string") -> dict[str, Any]:
    """A history item as a chat message: role, content, and the tool-call fields (`arguments` as in
    tool_call); with reasoning "keep", an assistant message's thinking as `reasoning_content` (the key
    vLLM, DeepSeek and Qwen3-style chat templates use); nothing else."""
    role = m.role
    if role == "assistant":
        out: dict[str, Any] = {"role": role, "content": assistant_text(m)}
        if reasoning == "keep" and m.reasoning:
            out["reasoning_content"] = m.reasoning
        if m.tool_calls:
            out["tool_calls"] = [tool_call(c, m.action, arguments) for c in m.tool_calls]
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


def split(traj: Trajectory, reasoning: str = "drop", arguments: str = "string") -> tuple[list[Message], list[Turn]]:
    """The conversation as (system and task, turns): each turn a reply and its observation, but the last,
    which is the final reply alone."""
    history = traj.history
    check_shape(history)
    messages = [clean(m, reasoning, arguments) for m in history]
    body = messages[2:]
    turns = [body[i:i + 2] for i in range(0, len(body), 2)]
    if not turns:
        raise Unusable(MALFORMED, "the history holds no assistant reply")
    turns[-1] = turns[-1][:1]
    return messages[:2], turns


def messages_of(traj: Trajectory) -> list[Message]:
    """The whole clean conversation, ending with the final assistant reply."""
    head, turns = split(traj)
    return head + flat(turns)


def flat(turns: Sequence[Turn]) -> list[Message]:
    return [m for turn in turns for m in turn]


def action_of(traj: Trajectory, turn: int) -> str:
    """The command of the `turn`-th turn (0-based), from the history or else from its step."""
    action = traj.history[2 + 2 * turn].action
    if action is None and turn < len(traj.trajectory):
        action = traj.trajectory[turn].action
    return (action or "").strip()


def final_turns_start(traj: Trajectory, n_turns: int) -> int:
    """The first of the final turns truncation keeps: the last `submit`'s turn, else the last turn."""
    return next((i for i in reversed(range(n_turns)) if action_of(traj, i) == SUBMIT), n_turns - 1)


def with_note(head: list[Message], dropped: int) -> list[Message]:
    """System and task, the task message followed by the note saying how many turns were left out."""
    note = DROPPED_NOTE.format(n=dropped, turns="turn" if dropped == 1 else "turns")
    return [head[0], {**head[1], "content": f"{head[1]['content']}\n\n{note}"}]


def newest_that_fit(turns: list[Turn], room: int) -> list[Turn]:
    """The longest run of the newest `turns` whose estimate is within `room`."""
    kept: list[Turn] = []
    for turn in reversed(turns):
        room -= conversation_tokens(turn)
        if room < 0:
            break
        kept.insert(0, turn)
    return kept


def fit(head: list[Message], turns: list[Turn], keep_from: int, max_tokens: int) -> tuple[list[Message], int]:
    """The conversation within `max_tokens`, and how many turns were dropped: whole turns from before
    `keep_from`, oldest first. Raises Unusable(TOO_LONG) when head and turns[keep_from:] alone do not fit."""
    full = head + flat(turns)
    if conversation_tokens(full) <= max_tokens:
        return full, 0
    middle, final = turns[:keep_from], turns[keep_from:]
    # the least that can be kept: head, final turns and the note at its longest (every middle turn dropped)
    least = conversation_tokens(with_note(head, len(middle)) + flat(final)) if middle else conversation_tokens(full)
    if least > max_tokens:
        raise Unusable(TOO_LONG, f"the system prompt, the task and the {len(final)} final turn(s) kept whole "
                                 f"need {least} estimated tokens, over the limit of {max_tokens}")
    kept = newest_that_fit(middle, max_tokens - least)
    dropped = len(middle) - len(kept)
    return with_note(head, dropped) + flat(kept) + flat(final), dropped


def conversation(traj: Trajectory, max_tokens: int, reasoning: str = "drop", arguments: str = "string"
                 ) -> Conversation:
    """The trajectory as a training conversation within `max_tokens` (estimated; kept reasoning counts), its
    tool calls' `arguments` objects or JSON strings (ARGUMENTS). Raises Unusable."""
    if reasoning not in REASONING:
        raise ValueError(f"reasoning must be one of {REASONING}, not {reasoning!r}")
    if arguments not in ARGUMENTS:
        raise ValueError(f"arguments must be one of {ARGUMENTS}, not {arguments!r}")
    head, turns = split(traj, reasoning, arguments)
    messages, dropped = fit(head, turns, final_turns_start(traj, len(turns)), max_tokens)
    tools = [BASH_TOOL] if is_tool_mode(traj) else None
    return Conversation(messages=messages, tools=tools, tokens=conversation_tokens(messages),
                        dropped_turns=dropped)


def example_tokens(conv_tokens: int, tools: list[dict[str, Any]] | None) -> int:
    """An example's estimated length as a trainer sees it: the conversation and the tool specs a chat
    template renders into the prompt."""
    return conv_tokens + (estimate(json.dumps(tools)) if tools else 0)


def max_length_for(longest: int) -> int:
    """The `max_length` to train with so that no example is cut (TRL's default, 1024, truncates silently):
    the longest example's estimate with a margin for the estimate (a real tokenizer may need more tokens
    for code and logs than characters / 4) and for the chat template's framing, rounded up."""
    return max(MAX_LENGTH_STEP, math.ceil(longest * MAX_LENGTH_MARGIN / MAX_LENGTH_STEP) * MAX_LENGTH_STEP)


METADATA_FIELDS = ("task_id", "dataset_name", "attempt", "status", "score", "baseline_score", "gain", "metric", "direction",
                   "exit_status", "solve_rate", "tokens", "truncated")


def metadata(row: dict[str, Any], traj: Trajectory, conv: Conversation) -> dict[str, Any]:
    """Flat metadata of one example: the store row (the trajectory's info fills what the row lacks; the
    dataset is the task bundle's, None when the store has no such task) and the exported conversation's
    size."""
    info = traj.info
    return {
        "task_id": row["task_id"],
        "dataset_name": row.get("dataset_name"),
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
