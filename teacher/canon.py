"""The offline teacher's canonical replies and conversations, for the reply styles (teacher/styles.py): a
canonical reply read back into its parts, the JSON a structured-output request gets, tool calls made from a
reply, and a styled conversation made canonical again before the rule-based policy reads it. Pure."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.replies import canonical_arguments, split_thinking

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_FILE = re.compile(r"^FILE: (\S+)\n```[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_JSON = re.compile(r"^```json\n(.*?)\n^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_ACTION = re.compile(r"\A(THOUGHT: |DISCUSSION\n)(.*?)\n\n```(bash)?\n(.*?)\n```\n?\Z", re.DOTALL)
CONSOLE = re.compile(r"^```console[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass
class Canon:
    """The policy's canonical reply, read back into its parts (the teacher's own fixed formats)."""

    kind: str  # "topics" | "bundle" | "fix" | "action" | "text"
    text: str
    topics: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    explanation: str = ""
    thought: str = ""
    command: str = ""
    mlgym: bool = False


def read_canon(purpose: str, text: str) -> Canon:
    if purpose == "propose_topics":
        m = CANON_JSON.search(text)
        if m:
            return Canon("topics", text, topics=json.loads(m.group(1)))
    elif purpose == "write_task" and text.startswith("```json\n"):
        m = CANON_JSON.search(text)
        if m:
            return Canon("bundle", text, meta=json.loads(m.group(1)), files=canon_files(text))
    elif purpose == "fix_task" and text.startswith("EXPLANATION: "):
        why = text.split("\n", 1)[0].removeprefix("EXPLANATION: ")
        return Canon("fix", text, explanation=why, files=canon_files(text))
    elif m := CANON_ACTION.match(text):
        return Canon("action", text, thought=m.group(2), command=m.group(4), mlgym=m.group(1) == "DISCUSSION\n")
    return Canon("text", text)


def canon_files(text: str) -> dict[str, str]:
    return {name: body.rstrip("\n") for name, body in CANON_FILE.findall(text)}


def schema_name(purpose: str, response_format: Any) -> str | None:
    """"topics" or "task_bundle" when the request asks for that structured reply (json_schema by that name,
    or json_object for the purpose that has it), else None (a text reply)."""
    if not isinstance(response_format, dict):
        return None
    wanted = {"propose_topics": "topics", "write_task": "task_bundle"}.get(purpose)
    kind = response_format.get("type")
    if kind == "json_object":
        return wanted
    if kind == "json_schema":
        name = (response_format.get("json_schema") or {}).get("name")
        return wanted if name == wanted else None
    return None


# --- the conversation back to canonical ---------------------------------------------------------------


def policy_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as the plain style would have left it: assistant messages without thinking (and
    without reasoning fields), ```console blocks as ```bash without their `$ ` prompts, tool arguments
    as one JSON string. Other messages as they are."""
    out = []
    for m in messages:
        if m.get("role") != "assistant":
            out.append(m)
            continue
        m = {k: v for k, v in m.items() if k not in ("reasoning_content", "reasoning")}
        content = m.get("content")
        if isinstance(content, str):
            content = split_thinking(content)[1]
            m["content"] = CONSOLE.sub(lambda b: "```bash\n" + unprompted(b.group(1)) + "\n```", content)
        if m.get("tool_calls"):
            m["tool_calls"] = [once_encoded(c) for c in m["tool_calls"]]
        out.append(m)
    return out


def unprompted(body: str) -> str:
    return "\n".join(line[2:] if line.startswith("$ ") else line for line in body.splitlines())


def once_encoded(call: Any) -> Any:
    """A tool call with its arguments as one JSON-encoded object (agents.replies.canonical_arguments)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    return {**call, "function": {**call["function"], "arguments": canonical_arguments(call["function"].get("arguments"))}}


# --- shared pieces ------------------------------------------------------------------------------------


def offers_bash(tools: list[Any] | None) -> bool:
    return any(isinstance(t, dict) and (t.get("function") or {}).get("name") == "bash" for t in tools or ())


def shell_blocks(text: str) -> list[str]:
    return [body for tag, body in FENCE.findall(text) if tag.lower() in {"", "bash", "sh", "shell"}]


def call_id(position: int, i: int, command: str) -> str:
    return "call_" + hashlib.sha256(f"{position}:{i}:{command}".encode()).hexdigest()[:16]


def tool_message(text: str, position: int) -> dict[str, Any]:
    """A thought_action reply as an assistant message calling the bash tool once per command block."""
    commands = shell_blocks(text)
    if not commands:
        return {"role": "assistant", "content": text.removeprefix("THOUGHT:").strip()}
    thought = text[:text.index("```")].removeprefix("THOUGHT:").strip()
    calls = [{"id": call_id(position, i, cmd), "type": "function",
              "function": {"name": "bash", "arguments": json.dumps({"command": cmd.strip()})}}
             for i, cmd in enumerate(commands)]
    return {"role": "assistant", "content": thought, "tool_calls": calls}


def structured(canon: Canon) -> Any:
    """The JSON a structured-output request gets: {"topics": [...]} or the bundle with a "files" object."""
    if canon.kind == "topics":
        return {"topics": canon.topics}
    if canon.kind == "bundle":
        return {**canon.meta, "files": {name: body + "\n" for name, body in canon.files.items()}}
    return None
