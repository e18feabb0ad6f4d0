"""Replies -> one action, and command output -> an observation. Pure functions, no I/O.

thought_action (SWE-agent's parser): a THOUGHT, then exactly one fenced block holding the command.
tool_call: exactly one call of the `bash` tool. Zero or several actions is a FormatError.
discussion (MLGym's MLGymThoughtActionParser): a DISCUSSION, then one fenced block, tagged or not, whose
command may span lines (an edit's text up to end_of_edit).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from agents.replies import canonical_arguments
from agents.reply_blocks import Block, scan

ActionFormat = Literal["thought_action", "tool_call"]
SHELL_TAGS = {"", "bash", "sh", "shell", "zsh"}
CONSOLE_TAGS = {"console", "shell-session", "terminal"}
PROMPT = re.compile(r"^\s*\$\s+")
FENCE = re.compile(  # MLGym's reading (parse_discussion)
    r"^```([\w+-]*)[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
THOUGHT_PREFIX = re.compile(r"^\s*(THOUGHT|DISCUSSION)\s*:\s*", re.IGNORECASE)
DISCUSSION_HEADER = re.compile(r"^\s*DISCUSSION\b[ \t]*:?\s*", re.IGNORECASE)
ANY_BLOCK = re.compile(r"```([\s\S]*?)```")  # how MLGym counts code blocks
ELIDED = "\n[... {n} characters elided ...]\n"
BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run one shell command in the task's workspace; `validate` and `submit` are special.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    },
}


class FormatError(Exception):
    """The reply holds no action or several: the message says which, for the correction."""


@dataclass(frozen=True)
class Action:
    thought: str
    command: str
    tool_call_id: str | None = None

    @property
    def special(self) -> str | None:
        """`validate` or `submit` when the command is one of them, else None."""
        word = self.command.strip()
        return word if word in ("validate", "submit") else None


def console_command(block: Block) -> str:
    """A shell block's command: `$ ` prompts stripped when every line has one; a ```console block that mixes
    prompted commands with their output is refused (which lines would run is not clear)."""
    lines = [line for line in block.body.splitlines() if line.strip()]
    prompted = [line for line in lines if PROMPT.match(line)]
    if prompted and len(prompted) < len(lines) and block.tag in CONSOLE_TAGS:
        raise FormatError(f"the ```{block.tag} block mixes `$` commands with their output: send only the "
                          "command, without a prompt or output, in a fenced block tagged bash")
    if prompted and len(prompted) == len(lines):
        return "\n".join(PROMPT.sub("", line, count=1) for line in lines)
    return block.body


def parse_thought_action(text: str) -> Action:
    """THOUGHT, then exactly one block tagged as a shell (bash, sh, shell, zsh, console) or untagged. Blocks
    of other languages are not commands; nothing inside a block counts as a second command."""
    s = scan(text)
    blocks = [b for b in s.blocks if b.tag in SHELL_TAGS | CONSOLE_TAGS]
    if not blocks:
        raise FormatError("the reply holds no command: put exactly one command in a fenced block tagged bash")
    if len(blocks) > 1:
        raise FormatError(f"the reply holds {len(blocks)} commands: give exactly one fenced bash block per reply")
    block = blocks[0]
    if not block.closed:
        raise FormatError("the bash block is not closed: end it with a line holding only ```")
    command = console_command(block)
    if not command.strip():
        raise FormatError("the bash block is empty: put one command in it")
    thought = THOUGHT_PREFIX.sub("", "\n".join(s.lines[:block.start])).strip()
    return Action(thought=thought, command=command.strip())


def parse_discussion(text: str) -> Action:
    """MLGym's reply: more than one code block, or none with a command in it, is a FormatError (with
    MLGym's own messages); the thought is the rest of the reply, without the DISCUSSION header."""
    if len(ANY_BLOCK.findall(text)) > 1:
        raise FormatError("Found more than one code block in the model response.")
    blocks = list(FENCE.finditer(text))
    if not blocks or not blocks[-1].group(2).strip():
        raise FormatError("No action found in model response.")
    m = blocks[-1]
    thought = DISCUSSION_HEADER.sub("", (text[:m.start()] + text[m.end():]).strip(), count=1)
    return Action(thought=thought.strip(), command=m.group(2).strip())


def bash_command(arguments: Any) -> str:
    """The `command` of the bash tool's arguments: a JSON string of an object, an object, or a JSON string
    encoded twice."""
    try:
        value = json.loads(canonical_arguments(arguments) or "{}")
    except (json.JSONDecodeError, TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise FormatError('the bash tool\'s arguments are not a JSON object with a `command` string: call it '
                          'with {"command": "<one shell command>"}')
    command = value.get("command")
    if not isinstance(command, str) or not command.strip():
        raise FormatError('the bash tool call has no `command` string: call it with {"command": "<one shell '
                          'command>"}')
    return command.strip()


def parse_tool_calls(text: str, tool_calls: list[dict[str, Any]]) -> Action:
    """Exactly one call of the `bash` tool; anything else is a FormatError (never another exception)."""
    if not tool_calls or not isinstance(tool_calls, list | tuple):
        raise FormatError("the reply calls no tool: call the `bash` tool exactly once")
    if len(tool_calls) > 1:
        raise FormatError(f"the reply makes {len(tool_calls)} tool calls: call the `bash` tool exactly once")
    call = tool_calls[0] if isinstance(tool_calls[0], dict) else {}
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if name != "bash":
        raise FormatError(f"unknown tool {name!r}: the only tool is `bash`; call it with "
                          '{"command": "<one shell command>"}')
    command = bash_command(fn.get("arguments"))
    call_id = call.get("id")
    return Action(thought=(text or "").strip(), command=command,
                  tool_call_id=str(call_id) if call_id is not None else None)


def parse_action(text: str, tool_calls: list[dict[str, Any]], action_format: ActionFormat) -> Action:
    if action_format == "tool_call":
        return parse_tool_calls(text, tool_calls)
    return parse_thought_action(text)


def shorten(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text, with a marker saying how much was cut between."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return text[:head] + ELIDED.format(n=len(text) - limit) + text[-tail:]


def command_output(stdout: str, stderr: str, exit_code: int, limit: int) -> str:
    """stdout, then stderr, then the exit code when it is not 0; shortened to `limit` characters."""
    parts = [p.rstrip("\n") for p in (stdout, stderr) if p.strip()]
    text = "\n".join(parts) if parts else "(no output)"
    text = shorten(text, limit)
    return f"{text}\n(exit code {exit_code})" if exit_code != 0 else text
