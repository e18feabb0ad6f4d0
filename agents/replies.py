"""Parsing model replies (and, for the offline teacher, prompts): fenced blocks, JSON, files. Pure."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from agents import reply_json
from agents.reply_blocks import ReplyError, Scan, ends_inside_block, scan
from agents.reply_files import read_files

__all__ = ["ReplyError", "canonical_arguments", "explanation", "fenced_blocks", "files", "first_json",
           "json_blocks", "split_thinking", "text_tool_calls"]

EXPLANATION = re.compile(r"^[#*_\s]*EXPLANATION[*_\s]*:[*_\s]*(.+)$", re.IGNORECASE)


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class CutOff(ReplyError):
    """The reply ended at the length limit (finish_reason "length"): never read as complete."""

    def __init__(self) -> None:
        super().__init__("the reply was cut off at the length limit before it ended")


def split_thinking(content: str) -> tuple[str, str]:
    """(thinking, the rest) of a reply's content. Models served without a reasoning parser (Qwen3,
    DeepSeek-R1) write `<think>…</think>` at the START of the content; templates that open the tag in the
    prompt leave only `</think>`; a reply cut off while thinking has no closing tag, so all of it is
    thinking. Nothing inside thinking may count as an action, a file or JSON: it is taken out before any
    parsing. A tag anywhere else (a file that mentions `<think>`, a `</think>` inside a code block) is
    text: taking it for thinking would cut the reply silently."""
    thoughts: list[str] = []
    rest = content.strip()
    head, sep, tail = rest.partition(THINK_CLOSE)
    if sep and THINK_OPEN not in head and not ends_inside_block(head):  # the opening tag was in the prompt
        thoughts.append(head)
        rest = tail.strip()
    while rest.startswith(THINK_OPEN):
        thought, sep, tail = rest[len(THINK_OPEN):].partition(THINK_CLOSE)
        thoughts.append(thought)
        rest = tail.strip() if sep else ""  # no closing tag: cut off while thinking
    return "\n\n".join(t.strip() for t in thoughts if t.strip()), rest


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
    name is kept as a nameless call holding the raw text, for the parser to refuse with a reason. Only
    outside fenced blocks: a file or an example that holds the tags is text."""
    calls: list[dict[str, Any]] = []

    def take(m: re.Match[str]) -> str:
        if ends_inside_block(text[:m.start()]):
            return m.group(0)
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
    """The bodies of the text's fenced blocks (of one language, any case, when `lang` is given)."""
    return [b.body for b in scan(text).blocks if lang is None or b.tag == lang.lower()]


def json_blocks(text: str) -> list[Any]:
    """The values of the blocks tagged json (any case) that hold valid JSON (as prompts carry context)."""
    out = []
    for body in fenced_blocks(text, "json"):
        with contextlib.suppress(json.JSONDecodeError):
            out.append(reply_json.loads(body))
    return out


def first_json(text: str, kind: type) -> Any:
    """The one JSON array (an object wrapping one array counts) or object the reply gives: in a ```json
    block, an untagged block or bare. None, or two different ones, is a ReplyError."""
    return reply_json.one_json(text, reply_json.of_kind(kind), "a JSON array" if kind is list else "a JSON object")


def files(text: str) -> dict[str, str]:
    """The files a text gives, each announced by a header right before its fenced block (`FILE: name` …)."""
    return read_files(text).contents()


def explanation(text: str | Scan) -> str:
    """The `EXPLANATION: …` line outside the blocks ('' when there is none)."""
    s = scan(text) if isinstance(text, str) else text
    for _, line in s.outside():
        m = EXPLANATION.match(line.strip())
        if m:
            return m.group(1).strip().strip("*").strip()
    return ""
