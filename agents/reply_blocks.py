"""The fenced blocks of a reply, found structurally, and the lines outside them. Pure.

CommonMark's rules: a fence is three or more backticks or tildes, indented at most three spaces; a backtick
fence's info string holds no backtick; the block ends at a fence of the same character, at least as long,
with nothing after it. Everything between is the body, whatever it looks like: a header, a file name or an
action inside a block is text of that block and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENING = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*(.*?)[ \t]*$")
CLOSING = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


class ReplyError(ValueError):
    """The reply does not follow the requested format; the message says what to send instead."""


@dataclass(frozen=True)
class Block:
    info: str  # the opening fence's info string, as written (```python title="x" -> 'python title="x"')
    body: str
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence (the number of lines when it is not closed)
    closed: bool

    @property
    def tag(self) -> str:
        """The language, lower case: the info string's first word up to a colon (```Python:x.py -> python)."""
        first = self.info.split(maxsplit=1)[0] if self.info else ""
        return first.split(":", 1)[0].lower()

    @property
    def line(self) -> int:
        """The opening fence's line number, from 1 (for messages)."""
        return self.start + 1


@dataclass(frozen=True)
class Scan:
    lines: list[str]
    blocks: list[Block]

    def inside(self) -> set[int]:
        """Indices of the lines that belong to a block, its fences included."""
        return {i for b in self.blocks for i in range(b.start, min(b.end, len(self.lines) - 1) + 1)}

    def outside(self) -> list[tuple[int, str]]:
        inside = self.inside()
        return [(i, line) for i, line in enumerate(self.lines) if i not in inside]

    def line_before(self, index: int) -> tuple[int, str] | None:
        """The last non-blank line before block `index`, when only blank lines separate them and it is not
        part of an earlier block."""
        block = self.blocks[index]
        floor = self.blocks[index - 1].end if index > 0 else -1
        i = block.start - 1
        while i > floor and not self.lines[i].strip():
            i -= 1
        return (i, self.lines[i].strip()) if i > floor else None


def opening(line: str) -> tuple[int, str, str] | None:
    """(indent, fence, info) when the line opens a fenced block."""
    m = OPENING.match(line)
    if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
        return None
    return len(m.group(1)), m.group(2), m.group(3)


def closes(line: str, fence: str) -> bool:
    m = CLOSING.match(line)
    return bool(m) and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)


def dedent(line: str, indent: int) -> str:
    """A body line without up to `indent` leading spaces (those of the opening fence)."""
    cut = len(line) - len(line.lstrip(" "))
    return line[min(cut, indent):]


def scan(text: str) -> Scan:
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opened = opening(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence, info = opened
        j = i + 1
        while j < len(lines) and not closes(lines[j], fence):
            j += 1
        body = "\n".join(dedent(line, indent) for line in lines[i + 1:j])
        blocks.append(Block(info=info, body=body, start=i, end=j, closed=j < len(lines)))
        i = j + 1
    return Scan(lines=lines, blocks=blocks)


def ends_inside_block(text: str) -> bool:
    """Whether the text ends inside a fenced block (one it opened and did not close)."""
    blocks = scan(text).blocks
    return bool(blocks) and not blocks[-1].closed


def outside_text(s: Scan) -> str:
    """The reply without its blocks (each block leaves an empty line)."""
    inside = s.inside()
    return "\n".join("" if i in inside else line for i, line in enumerate(s.lines))


def refuse_unclosed(s: Scan) -> None:
    for b in s.blocks:
        if not b.closed:
            raise ReplyError(f"the fenced block opened on line {b.line} is never closed: end every block with "
                             "a line holding only the closing fence (```)")
