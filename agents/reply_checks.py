"""What a reply that gives files must not hold: a diff, an elided body, a code block with no file. Pure.

Each refusal says what to send instead: whole files, every line, each under its own `FILE: <name>` line.
"""

from __future__ import annotations

import json
import re

from agents.reply_blocks import ReplyError, Scan, outside_text
from agents.reply_files import FILE_LIKE, NOT_FILE_TAGS
from agents.reply_json import JSON_TAGS, loads

DIFF_TAGS = {"diff", "patch", "udiff"}
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
DIFF_HEAD = re.compile(r"^--- \S.*\n\+\+\+ \S", re.MULTILINE)
COMMENT = re.compile(r"^\s*(?:#+|//+|/\*+|<!--|--|;+|\*)\s*(.*?)\s*(?:\*/|-->)?\s*$")
DOTS = re.compile(r"\.\.\.|…")
ELIDING_WORDS = re.compile(r"\b(rest|unchanged|existing|same|previous|remaining|omitted|elided|as before|"
                           r"everything else|no changes?|truncated|snip)\b", re.IGNORECASE)
SAME_AS_BEFORE = re.compile(r"^\(?\s*(?:same as (?:before|above|the original)|unchanged|as before|no changes?|"
                            r"rest of (?:the )?(?:file|code)(?: (?:is )?unchanged)?)\s*\)?\.?$", re.IGNORECASE)
WHOLE_FILES = "send each changed file whole, as a line `FILE: <name>` and one fenced block with its full new content"


def is_diff(body: str) -> bool:
    return bool(HUNK.search(body)) and bool(DIFF_HEAD.search(body) or body.lstrip().startswith("@@"))


def refuse_diffs(s: Scan) -> None:
    for b in s.blocks:
        if b.tag in DIFF_TAGS or is_diff(b.body):
            raise ReplyError(f"the block on line {b.line} is a diff, which is not applied: {WHOLE_FILES}")
    if is_diff(outside_text(s)):
        raise ReplyError(f"the reply is a diff, which is not applied: {WHOLE_FILES}")


def elided_line(name: str, body: str) -> str | None:
    """The first line of the body that stands for code left out, or None."""
    for line in body.splitlines():
        m = COMMENT.match(line)
        said = m.group(1) if m else None
        if said is not None and (DOTS.fullmatch(said.replace(" ", "")) or SAME_AS_BEFORE.match(said)
                                 or (DOTS.search(said) and ELIDING_WORDS.search(said))):
            return line.strip()
        if not name.endswith(".py") and DOTS.fullmatch(line.strip()):  # a lone `...` in a csv or text file
            return line.strip()
    return None


def refuse_elisions(files: dict[str, str]) -> None:
    for name, body in files.items():
        line = elided_line(name, body)
        if line is not None:
            raise ReplyError(f"{name} is not whole: {line!r} stands for code left out; {WHOLE_FILES} "
                             "(every line of it, nothing elided)")


def holds_json(body: str) -> bool:
    try:
        loads(body)
    except json.JSONDecodeError:
        return False
    return True


def refuse_stray_code(s: Scan, named: dict[int, str]) -> None:
    """A code block that no header binds to a file: it would be dropped, so it is refused. Blocks tagged
    text, output, console or a shell, and JSON, are not files."""
    for k, b in enumerate(s.blocks):
        if k in named or b.tag in NOT_FILE_TAGS | JSON_TAGS or (not b.tag and holds_json(b.body)):
            continue
        before = s.line_before(k)
        guess = FILE_LIKE.search(before[1]) if before else None
        header = f"`FILE: {guess.group(0)}`" if guess else "`FILE: <name>`"
        raise ReplyError(f"the ```{b.tag} block on line {b.line} has no file header: put the line {header} "
                         "directly before the block of each file (a block that is no file: tag it ```text)")
