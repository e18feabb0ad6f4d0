"""Files in a reply: headers binding to the next fenced block, and the checks a file reply must pass. Pure.

A header is the last line before a block (blank lines between allowed, nothing else), outside every block:
`FILE: x`, FILE: `x`, **FILE: x**, `## File: x` (explicit), or `### x`, `**x**`, `` `x` `` naming a file
(weak), or the fence's info string (```python title="x"```, ```python x```, ```python:x```, ```x```).
An explicit header must name a plain relative path; a weak one that mentions a file but is not a plain
name is refused too; a weak one naming no file (`### Step 2`) is no header.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from agents.reply_blocks import Block, ReplyError, Scan, scan

PLAIN_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
FILE_LIKE = re.compile(r"[\w./-]*\w\.[A-Za-z][A-Za-z0-9]{0,7}\b")
LIST_MARK = r"(?:(?:[-*+]|\d+[.)])\s+)?"
EXPLICIT = re.compile(r"^" + LIST_MARK + r"(?:#{1,6}\s*)?[*_]{0,2}\s*file(?:name)?\s*[*_]{0,2}\s*:[*\s]*(.*?)\s*$",
                      re.IGNORECASE)
WEAK = [re.compile(LIST_MARK + p) for p in
        (r"#{1,6}\s+(.+?)\s*#*", r"\*\*(.+?)\*\*:?", r"__(.+?)__:?", r"`([^`]+)`:?",
         r"([\w./-]+\.(?:py|csv|tsv|txt|json|jsonl|md|sh|yaml|yml|toml|cfg|ini|js|ts)):?")]  # a bare name line
NUMBERING = re.compile(r"^(?:\d+[.)]|[-*+])\s+")
MARKUP = "`*'\""
NOT_FILE_TAGS = {"bash", "sh", "shell", "zsh", "console", "text", "txt", "plaintext", "output", "log"}
NAME_ATTR = re.compile(r"\b(?:title|file|filename|name|path)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+))")


@dataclass(frozen=True)
class Files:
    """The files a reply gives: name -> content, and which blocks they came from."""

    scan: Scan
    named: dict[int, str]  # block index -> file name

    def contents(self) -> dict[str, str]:
        return {name: with_newline(self.scan.blocks[k].body) for k, name in self.named.items()}


def with_newline(body: str) -> str:
    return body if body.endswith("\n") else body + "\n"


def unmarked(name: str) -> str:
    """The name without surrounding markup: backticks, bold, quotes, a trailing colon."""
    name = name.strip().rstrip(":").strip()
    while name and name[0] in MARKUP and name[-1] == name[0]:
        name = name[1:-1].strip()
    name = name.strip("*").strip()
    return name[2:] if name.startswith("./") else name


def plain(name: str) -> bool:
    return bool(PLAIN_PATH.fullmatch(name)) and ".." not in name.split("/")


def refuse_name(header: str, name: str) -> ReplyError:
    guess = FILE_LIKE.search(name)
    suggestion = f"`FILE: {guess.group(0).lstrip('./')}`" if guess else "`FILE: <name>`"
    return ReplyError(f"the file header {header!r} does not name a plain relative path ({name!r}): write the "
                      f"line {suggestion} (a path such as prepare.py or src/util.py: no spaces, markup, `..` or "
                      "leading /) right before the file's fenced block")


def explicit_name(line: str) -> str | None:
    """The name an explicit `FILE: x` header gives (checked), or None when the line is no such header."""
    m = EXPLICIT.match(line)
    if m is None:
        return None
    name = unmarked(m.group(1))
    if not plain(name):
        raise refuse_name(line, name)
    return name


def weak_name(line: str, block: Block, known: Collection[str]) -> str | None:
    """The file a heading, a bold or a code-span line names, or None when it names no file."""
    m = next((m for p in WEAK if (m := p.fullmatch(line))), None)
    if m is None:
        return None
    name = unmarked(NUMBERING.sub("", unmarked(m.group(1))))
    if EXPLICIT.match(name):  # `FILE: x` in a code span or in bold
        return explicit_name(name)
    if plain(name) and (FILE_LIKE.fullmatch(name) or name in known):
        if block.tag in NOT_FILE_TAGS:
            raise ReplyError(f"the ```{block.tag} block on line {block.line} follows {line!r}: if it is that "
                             f"file, announce it with the line `FILE: {name}`; if it is no file, put no file "
                             "name on the line right before it")
        return name
    if FILE_LIKE.search(name) and block.tag not in NOT_FILE_TAGS:
        raise refuse_name(line, name)
    return None


def info_name(block: Block) -> str | None:
    """The file a fence's info string names: title="x", python:x, ```x.py, or ```python x.py."""
    words = block.info.split()
    m = NAME_ATTR.search(block.info)
    if m:
        name = next(g for g in m.groups() if g is not None)
    elif words and ":" in words[0]:
        name = words[0].split(":", 1)[1]
    elif words and FILE_LIKE.fullmatch(words[0]):
        name = words[0]
    elif len(words) > 1 and FILE_LIKE.search(words[1]):
        name = " ".join(words[1:])
    else:
        return None
    name = unmarked(name)
    if not plain(name):
        raise refuse_name(f"```{block.info}", name)
    return name


def header_name(s: Scan, k: int, known: Collection[str]) -> tuple[int | None, str | None]:
    """(the header line's index, the file name) of block k; a line header and an info string must agree."""
    before = s.line_before(k)
    index, line_name = None, None
    if before is not None:
        index, line = before
        line_name = explicit_name(line) or weak_name(line, s.blocks[k], known)
    fence_name = info_name(s.blocks[k])
    if line_name and fence_name and line_name != fence_name:
        raise ReplyError(f"the block on line {s.blocks[k].line} is announced as {line_name} but its fence "
                         f"names {fence_name}: give one name, as a line `FILE: <name>` before the block")
    return (index if line_name else None), line_name or fence_name


def refuse_dangling(s: Scan, used: set[int]) -> None:
    """An explicit `FILE:` line that announces no block."""
    for i, line in s.outside():
        if i not in used and EXPLICIT.match(line.strip()):
            raise ReplyError(f"the line {line.strip()!r} is not followed directly by a fenced block: after "
                             "`FILE: <name>` send the file's whole content in one fenced block (and leave out "
                             "the files you do not change)")


def read_files(text: str | Scan, known: Collection[str] = ()) -> Files:
    """The files of a reply (or of a prompt): refused when a header is not a plain relative path, a file is
    given twice or an explicit header announces no block."""
    s = scan(text) if isinstance(text, str) else text
    named: dict[int, str] = {}
    used: set[int] = set()
    for k in range(len(s.blocks)):
        index, name = header_name(s, k, known)
        if name is None:
            continue
        if name in named.values():
            raise ReplyError(f"{name} is given twice: send each file once, whole")
        named[k] = name
        if index is not None:
            used.add(index)
    refuse_dangling(s, used)
    return Files(scan=s, named=named)
