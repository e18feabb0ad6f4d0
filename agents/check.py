"""`gymforge check-model`'s probes: per model role, real requests through the role's own client (its
endpoint, model and request options, `agents.llm_agent.role_llm`) with a small prompt in the role's format
(prompts/check_model.j2), the reply read by the role's real parser. Also: is thinking seen, does the
endpoint make tool calls (the solver: a request offering the bash tool), does it take the role's JSON
schema (proposer, coder: a json_schema request). A role can work when its endpoint answers and its reply
parses (and, for a solver in tool_call format, when tool calls come back)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agents import schemas
from agents.llm import LLM, Completion, ModelRefused
from agents.replies import ReplyError
from agents.solver.actions import BASH_TOOL, FormatError
from agents.structured import refuses_schema
from bus import Transient
from domain.model_api import PROBE_PURPOSE
from prompts import render

SCHEMA_OF = {"proposer": "topics", "coder": "task_bundle"}
PROBE_FILES = ("prepare.py", "baseline.py", "evaluate.py", "sample_submission.csv")


@dataclass
class RoleCheck:
    role: str
    endpoint: str
    reachable: bool = False
    model: str | None = None
    latency_s: float | None = None
    parsed: bool = False
    problem: str | None = None  # why the role cannot work (or what the parser said)
    reasoning: bool = False
    tool_calls: bool | None = None  # None: not probed (not the solver)
    structured_output: str = "-"  # yes | no (<why>) | off | - (the role has no schema)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and self.parsed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def line(self) -> str:
        if self.latency_s is None:  # no completion came back: unreachable, or refused
            return f"{self.role}: cannot work: {self.problem}"
        head = f"{self.role}: {'ok' if self.ok else 'cannot work'}: model {self.model}, {self.latency_s:.2f} s"
        parts = [head, "reply parsed" if self.parsed else f"reply not usable ({self.problem})",
                 f"reasoning {'seen' if self.reasoning else 'not seen'}"]
        if self.tool_calls is not None:
            parts.append(f"tool calls {'yes' if self.tool_calls else 'no'}")
        if self.structured_output != "-":
            parts.append(f"structured output {self.structured_output}")
        return ", ".join(parts + self.notes)


def probe_messages(role: str, action_format: str = "thought_action") -> list[dict[str, Any]]:
    return [{"role": "user", "content": render("check_model", role=role, action_format=action_format)}]


def _parse_fix(text: str) -> Any:
    """The debugger's parser, given the probe bundle's file names."""
    from agents.debugger import parse_fix

    changed, why = parse_fix(text, list(PROBE_FILES))
    if "evaluate.py" not in changed:
        raise ReplyError(f"the fix changes {sorted(changed) or 'no file'}, not evaluate.py")
    return changed, why


def text_parser(role: str) -> Callable[[str], Any]:
    from agents.coder import parse_bundle
    from agents.proposer import parse_topics

    return {"proposer": parse_topics, "coder": parse_bundle, "debugger": _parse_fix}[role]


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:240]


async def _ask(llm: LLM, messages: list[dict[str, Any]], **options: Any) -> Completion:
    return await llm.complete(messages, purpose=PROBE_PURPOSE, **options)


async def check_role(role: str, llm: LLM, *, action_format: str = "thought_action",
                     structured: str = "off") -> RoleCheck:
    """Probe one role through its client; never raises for what the endpoint does."""
    from agents.llm import public_url

    result = RoleCheck(role=role, endpoint=public_url(llm.endpoint.base_url))
    fmt = action_format if role == "solver" else "thought_action"
    tools = [BASH_TOOL] if role == "solver" and fmt == "tool_call" else None
    messages = probe_messages(role, fmt)
    try:
        reply = await _ask(llm, messages, tools=tools)
    except (Transient, ModelRefused) as exc:
        result.problem = _reason(exc)
        result.reachable = isinstance(exc, ModelRefused)  # it answered, with a refusal
        return result
    result.reachable, result.model, result.latency_s = True, reply.model, reply.latency_s
    result.reasoning = bool(reply.reasoning or reply.reasoning_tokens)
    read(result, role, reply, fmt)
    if role == "solver":
        result.tool_calls = bool(tools) and result.parsed
        if not tools:
            result.tool_calls = await _tool_calls(llm, result)
        if fmt == "tool_call" and not result.tool_calls:
            result.parsed = False
    if role in SCHEMA_OF:
        result.structured_output = "off" if structured == "off" else await _structured(llm, role, messages, result)
    return result


def read(result: RoleCheck, role: str, reply: Completion, fmt: str) -> None:
    """Whether the role's real parser reads the reply (the solver's: its interface's)."""
    try:
        if role == "solver":
            from agents.solver.actions import parse_discussion
            from agents.solver.interface import BashInterface

            action = parse_discussion(reply.text) if fmt == "discussion" else BashInterface(fmt).parse(reply)  # type: ignore[arg-type]
            if action.command.strip() != "echo ok":
                raise FormatError(f"the command read is {action.command.strip()!r}, not 'echo ok'")
        else:
            text_parser(role)(reply.text)
        result.parsed = True
    except (ReplyError, FormatError) as exc:
        result.problem = _reason(exc)
    if reply.cut_off:
        result.parsed, result.problem = False, "the reply was cut off (finish_reason length): raise max_completion_tokens"


async def _tool_calls(llm: LLM, result: RoleCheck) -> bool:
    """A request offering the bash tool: does a call come back?"""
    from agents.solver.interface import BashInterface

    try:
        reply = await _ask(llm, probe_messages("solver", "tool_call"), tools=[BASH_TOOL])
        result.reasoning = result.reasoning or bool(reply.reasoning or reply.reasoning_tokens)
        return BashInterface("tool_call").parse(reply).command.strip() == "echo ok"
    except (Transient, ModelRefused, FormatError) as exc:
        result.notes.append(f"tool request: {_reason(exc)}")
        return False


async def _structured(llm: LLM, role: str, messages: list[dict[str, Any]], result: RoleCheck) -> str:
    """A json_schema request with the role's schema: taken, and answered with JSON that conforms?"""
    name = SCHEMA_OF[role]
    try:
        reply = await _ask(llm, messages, response_format=schemas.response_format(name))
    except ModelRefused as exc:
        return "no (refused: the role asks in text)" if refuses_schema(exc) else f"no ({_reason(exc)})"
    except Transient as exc:
        return f"no ({_reason(exc)})"
    try:
        value = json.loads(reply.text)
    except ValueError:
        return "no (the reply is not JSON: the schema is ignored)"
    problem = schemas.violation(value, schemas.SCHEMAS[name])
    return "yes" if problem is None else f"no (the reply breaks the schema at {problem})"
