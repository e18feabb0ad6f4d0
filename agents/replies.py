"""Parsing model replies (and, for the offline teacher, prompts): fenced blocks, JSON, files. Pure."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)\n?^```", re.DOTALL | re.MULTILINE)
FILE_BLOCK = re.compile(r"^FILE:\s*(\S+)\s*\n```[^\n]*\n(.*?)\n?^```", re.DOTALL | re.MULTILINE)
EXPLANATION = re.compile(r"^EXPLANATION:\s*(.+)$", re.MULTILINE)


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class ReplyError(ValueError):
    """The reply does not follow the requested format; the message says how."""


class CutOff(ReplyError):
    """The reply ended at the length limit (finish_reason "length"): never read as complete."""

    def __init__(self) -> None:
        super().__init__("the reply was cut off at the length limit before it ended")


def split_thinking(content: str) -> tuple[str, str]:
    """(thinking, the rest) of a reply's content. Models served without a reasoning parser (Qwen3,
    DeepSeek-R1) write `<think>…</think>` at the start; templates that open the tag in the prompt leave
    only `</think>`; a reply cut off while thinking has no closing tag, so all of it is thinking. Nothing
    inside thinking may count as an action, a file or JSON: it is taken out before any parsing."""
    thoughts: list[str] = []
    head, sep, tail = content.partition(THINK_CLOSE)
    if sep and THINK_OPEN not in head:  # the opening tag was in the prompt
        thoughts.append(head)
        content = tail

    def take(m: re.Match[str]) -> str:
        thoughts.append(m.group(1))
        return ""

    content = THINK_BLOCK.sub(take, content)
    if THINK_OPEN in content:  # unclosed: cut off while thinking
        content, _, rest = content.partition(THINK_OPEN)
        thoughts.append(rest)
    return "\n\n".join(t.strip() for t in thoughts if t.strip()), content.strip()


TEXT_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def canonical_arguments(args: Any) -> str:
    """A tool call's arguments as one JSON-encoded object (OpenAI's form): an object given as an object, or
    a JSON string encoded twice, is encoded once; a string that is not JSON is kept for the parser to refuse."""
    if isinstance(args, dict):
        return json.dumps(args)
    if not isinstance(args, str):
        return "" if args is None else json.dumps(args)
    value: Any = args
    for _ in range(2):  # the string, or a JSON string holding it
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            return args
        if isinstance(value, dict):
            return json.dumps(value)
        if not isinstance(value, str):
            return args
    return args


def text_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Tool calls written in the text (Hermes-style `<tool_call>{"name": ..., "arguments": ...}</tool_call>`,
    as some servers leave them): (the text without them, the calls). A body that is not a JSON object with a
    name is kept as a nameless call holding the raw text, for the parser to refuse with a reason."""
    calls: list[dict[str, Any]] = []

    def take(m: re.Match[str]) -> str:
        try:
            body = json.loads(m.group(1))
        except json.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            calls.append({"function": {"name": body["name"], "arguments": body.get("arguments", "")}})
        else:
            calls.append({"function": {"name": "", "arguments": m.group(1)}})
        return ""

    rest = TEXT_TOOL_CALL.sub(take, text)
    return (rest.strip(), calls) if calls else (text, [])


def fenced_blocks(text: str, lang: str | None = None) -> list[str]:
    return [body for tag, body in FENCE.findall(text) if lang is None or tag.lower() == lang]


def json_blocks(text: str) -> list[Any]:
    out = []
    for body in fenced_blocks(text, "json"):
        try:
            out.append(json.loads(body))
        except json.JSONDecodeError:
            continue
    return out


def first_json(text: str, kind: type) -> Any:
    """The first ```json block of the given kind (dict or list); a bare JSON reply is accepted too."""
    candidates = json_blocks(text)
    if not candidates:
        with contextlib.suppress(json.JSONDecodeError):
            candidates = [json.loads(text.strip())]
    for value in candidates:
        if isinstance(value, kind):
            return value
    raise ReplyError(f"expected a ```json block holding a JSON {'array' if kind is list else 'object'}")


def files(text: str) -> dict[str, str]:
    """`FILE: name` lines each followed by one fenced block."""
    found = {name.strip(): body + ("\n" if not body.endswith("\n") else "") for name, body in FILE_BLOCK.findall(text)}
    for name in found:
        if name.startswith("/") or ".." in name.split("/"):
            raise ReplyError(f"file name {name!r} must be a relative path inside the task")
    return found


def explanation(text: str) -> str:
    m = EXPLANATION.search(text)
    return m.group(1).strip() if m else ""
