"""JSON in a reply: lenient decoding and the one value the reply gives. Pure.

Lenient where nothing else could be meant: trailing commas and `//` or `/* */` comments outside strings.
Candidates are the blocks tagged json (any case, jsonc, json5), untagged blocks holding JSON, and JSON
written bare (the whole reply, or a line starting with `{` or `[`). Blocks bound to a file are files, not
candidates. Two different fitting values is a refusal: the reader never picks one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from agents.reply_blocks import ReplyError, Scan, scan

JSON_TAGS = {"json", "jsonc", "json5"}
CLOSERS = "]}"


def blank(chars: list[str], start: int, stop: int) -> None:
    """Replace chars[start:stop] with spaces, keeping newlines (positions stay where they were)."""
    for k in range(start, stop):
        if chars[k] != "\n":
            chars[k] = " "


def skip_string(text: str, i: int) -> int:
    """The index after the string literal opening at text[i] (or the end of the text)."""
    i += 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def comment_end(text: str, i: int) -> int | None:
    """The index after a comment starting at text[i], or None when none starts there."""
    if text.startswith("//", i):
        stop = text.find("\n", i)
        return len(text) if stop < 0 else stop
    if text.startswith("/*", i):
        stop = text.find("*/", i + 2)
        return len(text) if stop < 0 else stop + 2
    return None


def next_code(text: str, i: int) -> int:
    """The index of the next character that is neither blank nor in a comment."""
    while i < len(text):
        end = comment_end(text, i)
        if end is not None:
            i = end
        elif text[i].isspace():
            i += 1
        else:
            break
    return i


def relaxed(text: str) -> str:
    """The text with comments and trailing commas outside strings blanked out (same length)."""
    chars = list(text)
    i = 0
    while i < len(text):
        c = text[i]
        end = comment_end(text, i)
        if c == '"':
            i = skip_string(text, i)
        elif end is not None:
            blank(chars, i, end)
            i = end
        elif c == "," and next_code(text, i + 1) < len(text) and text[next_code(text, i + 1)] in CLOSERS:
            chars[i] = " "
            i += 1
        else:
            i += 1
    return "".join(chars)


def loads(text: str) -> Any:
    """json.loads, then once more leniently; the lenient attempt's error when both fail."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(relaxed(text))


def bare_values(s: Scan) -> list[Any]:
    """JSON written outside the blocks: values starting a line with `{` or `[` (lines already consumed by
    a value are skipped)."""
    inside, decoder, out = s.inside(), json.JSONDecoder(), []
    i = 0
    while i < len(s.lines):
        if i in inside or not s.lines[i].lstrip().startswith(("{", "[")):
            i += 1
            continue
        stop = next((k for k in range(i, len(s.lines)) if k in inside), len(s.lines))
        segment = relaxed("\n".join(s.lines[i:stop]))
        try:
            value, used = decoder.raw_decode(segment, len(segment) - len(segment.lstrip()))
        except json.JSONDecodeError:
            i += 1
            continue
        out.append(value)
        i += segment.count("\n", 0, used) + 1
    return out


def block_values(s: Scan, skip: Collection[int]) -> list[Any]:
    out = []
    for k, b in enumerate(s.blocks):
        if k in skip or b.tag not in JSON_TAGS | {""} or not b.body.strip():
            continue
        try:
            out.append(loads(b.body))
        except json.JSONDecodeError as exc:
            if b.tag:
                raise ReplyError(f"the ```{b.tag} block on line {b.line} is not valid JSON ({exc.msg} at line "
                                 f"{exc.lineno} column {exc.colno}): send it again as valid JSON") from None
    return out


def values(s: Scan, skip: Collection[int] = ()) -> list[Any]:
    """Every JSON value the reply gives, outside the blocks in `skip`."""
    return block_values(s, skip) + bare_values(s)


def distinct(found: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for v in found:
        seen.setdefault(json.dumps(v, sort_keys=True), v)
    return list(seen.values())


def one_json(s: Scan | str, want: Callable[[Any], Any], what: str, skip: Collection[int] = ()) -> Any:
    """The one value `want` accepts (it maps a candidate to the wanted value, or None when the candidate is
    not one; it may raise ReplyError); none, or two different ones, is a ReplyError."""
    s = scan(s) if isinstance(s, str) else s
    fitting = distinct([w for w in (want(v) for v in values(s, skip)) if w is not None])
    if not fitting:
        raise ReplyError(f"expected a ```json block holding {what}")
    if len(fitting) > 1:
        raise ReplyError(f"the reply holds {len(fitting)} different JSON values that could be {what}: "
                         "send exactly one ```json block")
    return fitting[0]


def wrapped_list(value: Any, preferred: str = "") -> list[Any] | None:
    """A list, or the list inside an object wrapping it: its `preferred` key, else its one list-valued key
    (an object with several is refused, naming them)."""
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        return None
    if isinstance(value.get(preferred), list):
        return value[preferred]
    lists = [k for k, v in value.items() if isinstance(v, list)]
    if len(lists) > 1:
        raise ReplyError(f"the JSON object holds several arrays {lists}: send the one array alone"
                         + (f", or as {{\"{preferred}\": [...]}}" if preferred else ""))
    return value[lists[0]] if lists else None


def of_kind(kind: type) -> Callable[[Any], Any]:
    """`want` for a JSON array (possibly wrapped in an object) or a JSON object."""
    if kind is list:
        return wrapped_list
    return lambda v: v if isinstance(v, kind) else None
