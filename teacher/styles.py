"""Reply styles of the offline teacher: its rule-based policy's canonical replies RE-STYLED the way real
models write (see how Qwen3, DeepSeek-R1, vLLM's parsers and chat models answer). Still a rule-based stand-in,
not a model: the same deterministic answer, dressed in another model's habits, so that gymforge's parsers meet
those habits offline. Every choice is drawn from a generator seeded by the request (purpose, seed, messages):
the same request always gets the same reply.

- plain            the canonical replies, unchanged.
- think            Qwen3/DeepSeek-R1 without a reasoning parser: `<think>…</think>` at the start of the content
                   (a third of the time only `</think>`, the opening tag being in the chat template), holding
                   DRAFTS that are wrong or dangerous: the command `rm -rf data && python prepare.py`, a draft
                   JSON with a topic on a dataset that does not exist, a draft `FILE:` block of broken code.
- reasoning_field  the same thinking in `message.reasoning_content` (vLLM's reasoning parsers, DeepSeek; one
                   reply in four uses OpenRouter's `reasoning`), the content canonical.
- markdown         file headers as `### prepare.py`, `**FILE: x**`, FILE: `x`, `**x**`, `## File: x` or a fence
                   info string (```python title="x"); ```JSON and untagged fences for JSON, `{"topics": [...]}`
                   wrappers, a trailing comma, a `//` comment, a bare JSON reply; ```sh, ```shell and ```console
                   (`$ cmd`) for commands.
- tool_object      tool calls with `arguments` as a JSON object, or a JSON string encoded twice, without an
                   `id`, or written in the text Hermes-style (`<tool_call>{…}</tool_call>`, no tool_calls).
- diff             a fix's first reply as a unified diff, or with `# ... rest unchanged ...` in place of code;
                   after a correction ("Your reply could not be used:") the whole files.
- cutoff           the think style, but the first reply to each request is cut off mid-way (in the thinking or
                   in the answer, never after the answer's last fence) with finish_reason "length"; the re-ask
                   (the same conversation, optionally with the cut reply and a prompt appended) is complete.
- mixed            each request in one of the styles above (drawn from the request).

Structured output: a request with `response_format` json_schema named "topics" (propose_topics) or
"task_bundle" (write_task), or json_object for those purposes, is answered with JSON in that shape
({"topics": [...]}; the bundle's metadata with a "files" object), styled as far as a constrained reply can be
(thinking before it or beside it, indentation, cut off).

The conversation a styled reply comes back in is made canonical again before the policy reads it
(`policy_messages`: thinking stripped, ```console prompts removed, tool arguments encoded once), so the
policy's replay of the episode sees what it would have seen in the plain style. The canonical forms are in
teacher/canon.py, the dressing (drafts, markdown, diffs, odd tool calls) in teacher/dress.py; this module
chooses the style and remembers cut-off replies.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from agents.replies import split_thinking
from domain.tokens import estimate, message_tokens
from teacher.canon import (
    Canon,
    offers_bash,
    policy_messages,
    read_canon,
    schema_name,
    structured,
    tool_message,
)
from teacher.dress import (
    DRAFT_COMMAND,
    DRAFT_MARK,
    ELIDED,
    corrected,
    diff_fix,
    markdown_action,
    markdown_bundle,
    markdown_fix,
    markdown_topics,
    odd_tool_calls,
    prompt_files,
    thinking,
    with_think_block,
)

__all__ = ["DRAFT_COMMAND", "DRAFT_MARK", "ELIDED", "MIXED", "STYLES", "PrefixCache", "StyleError", "Styled",
           "Styler", "check_style", "offers_bash", "policy_messages", "tool_message"]

STYLES = ("plain", "think", "reasoning_field", "markdown", "tool_object", "diff", "cutoff", "mixed")
MIXED = ("think", "reasoning_field", "markdown", "tool_object", "diff", "cutoff")
THINKING_STYLES = ("think", "reasoning_field", "cutoff")


class StyleError(ValueError):
    """An unknown style name."""


def check_style(style: str) -> str:
    if style not in STYLES:
        raise StyleError(f"unknown teacher style {style!r}: one of {', '.join(STYLES)}")
    return style


@dataclass
class Styled:
    """The assistant message to send, its finish_reason and the thinking it holds (for reasoning_tokens)."""

    message: dict[str, Any]
    finish_reason: str
    thinking: str = ""
    structured: bool = False  # answered with the JSON a response_format asked for

    @property
    def completion_tokens(self) -> int:
        m = self.message
        return message_tokens(m) + estimate(str(m.get("reasoning") or ""))  # reasoning_content is counted


def request_rng(purpose: str, messages: Sequence[dict[str, Any]], seed: int | None) -> random.Random:
    blob = json.dumps([purpose, seed, list(messages)], sort_keys=True, default=str)
    return random.Random(int(hashlib.sha256(blob.encode()).hexdigest()[:16], 16))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def conversation_key(messages: Sequence[dict[str, Any]], salt: str = "") -> str:
    return hashlib.sha256((salt + json.dumps(list(messages), sort_keys=True, default=str)).encode()).hexdigest()


# --- the styler ---------------------------------------------------------------------------------------


class Styler:
    """Re-styles the policy's canonical replies in one style; remembers (boundedly) which conversations got
    a cut-off reply, so that their re-ask is answered in full."""

    def __init__(self, style: str = "plain", capacity: int = 50_000) -> None:
        self.style = check_style(style)
        self.capacity = capacity
        self.cut: OrderedDict[str, tuple[str, str]] = OrderedDict()  # conversation -> (cut content, its text)
        self.cut_texts: OrderedDict[str, None] = OrderedDict()  # the cut replies' contents and texts, hashed

    def policy_messages(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`policy_messages`, and a cut-off reply of its own sent back (e.g. in a re-ask) is no action: cut
        inside thinking whose opening tag was in the template, its text can hold a draft command."""
        out = policy_messages(messages)
        for i, m in enumerate(messages):
            if m.get("role") == "assistant" and isinstance(m.get("content"), str) and m["content"].strip() and \
                    digest(m["content"].strip()) in self.cut_texts:
                out[i] = {"role": "assistant", "content": ""}
        return out

    def reply(self, purpose: str, messages: Sequence[dict[str, Any]], text: str, *, tools: list[Any] | None = None,
              seed: int | None = None, response_format: Any = None) -> Styled:
        rng = request_rng(purpose, messages, seed) if self.style != "plain" else random.Random(0)
        style = rng.choice(MIXED) if self.style == "mixed" else self.style
        canon = read_canon(purpose, text)
        schema = schema_name(purpose, response_format)
        value = structured(canon) if schema else None
        bash = offers_bash(tools) and value is None
        position = len(messages)

        if value is not None:
            dumped = json.dumps(value, indent=2 if style == "markdown" else None)
            message: dict[str, Any] = {"role": "assistant", "content": dumped}
        elif bash:
            message = tool_message(text, position)
        else:
            message = {"role": "assistant", "content": self.restyled(style, purpose, canon, messages, rng)}

        if style == "tool_object" and bash and message.get("tool_calls"):
            message = odd_tool_calls(message, rng)
        thought = ""
        if style in THINKING_STYLES:
            thought = thinking(canon, rng)
            if style == "reasoning_field":
                message["reasoning" if rng.random() < 0.25 else "reasoning_content"] = thought
            else:
                message["content"] = with_think_block(str(message.get("content") or ""), thought, rng)
        salt = json.dumps([purpose, seed, bash])
        if style == "cutoff" and not self.reask(messages, salt):
            return replace(self.cut_off(message, messages, salt, rng), structured=value is not None)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return Styled(message, finish, thought, structured=value is not None)

    def restyled(self, style: str, purpose: str, canon: Canon, messages: Sequence[dict[str, Any]],
                 rng: random.Random) -> str:
        if style == "markdown":
            if canon.kind == "topics":
                return markdown_topics(canon.topics, rng)
            if canon.kind == "bundle":
                return markdown_bundle(canon, rng)
            if canon.kind == "fix":
                return markdown_fix(canon, rng)
            if canon.kind == "action" and not canon.mlgym:
                return markdown_action(canon, rng)
        if style == "diff" and canon.kind == "fix" and not corrected(messages):
            return diff_fix(canon, prompt_files(messages), rng)
        return canon.text

    # --- cut-off replies ------------------------------------------------------------------------------

    def reask(self, messages: Sequence[dict[str, Any]], salt: str) -> bool:
        """Is this the re-ask of a conversation whose reply was cut off: the same messages, or those with a
        prompt appended, or with the cut reply (as sent, or as its text without thinking) and a prompt?"""
        n = len(messages)
        if self.cut.get(conversation_key(messages, salt)) is not None or \
                (n >= 1 and self.cut.get(conversation_key(messages[:-1], salt)) is not None):
            return True
        if n >= 2 and messages[-2].get("role") == "assistant":
            cut = self.cut.get(conversation_key(messages[:-2], salt))
            sent = str(messages[-2].get("content") or "").strip()
            return cut is not None and sent in (cut[0].strip(), cut[1].strip())
        return False

    def cut_off(self, message: dict[str, Any], messages: Sequence[dict[str, Any]], salt: str,
                rng: random.Random) -> Styled:
        """The message cut mid-way: its content (thinking included) up to a point drawn from the request,
        before the answer's last fence; no tool calls (they would have come after the text); finish_reason
        "length"."""
        content = str(message.get("content") or "")
        end = content.rfind("```") if "```" in content else len(content)
        at = max(1, min(int(len(content) * rng.uniform(0.3, 0.8)), end - 1))
        cut = content[:at]
        thought, text = split_thinking(cut)
        key = conversation_key(messages, salt)
        self.cut[key] = (cut, text)
        self.cut.move_to_end(key)
        for sent in (cut.strip(), text.strip()):
            if sent:
                self.cut_texts[digest(sent)] = None
        for store in (self.cut, self.cut_texts):
            while len(store) > self.capacity:
                store.popitem(last=False)
        return Styled({"role": "assistant", "content": cut}, "length", thought)


class PrefixCache:
    """The longest prefix (in whole messages) a request shares with an earlier one: what a provider's prompt
    cache would serve (OpenAI's and vLLM's cache prefixes; this one has no 1,024-token minimum and counts
    whole messages, so caching shows offline)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.seen: OrderedDict[str, None] = OrderedDict()

    def cached_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        h = hashlib.sha256()
        cached = tokens = 0
        keys = []
        for m in messages:
            h.update(json.dumps(m, sort_keys=True, default=str).encode() + b"\0")
            key = h.hexdigest()
            tokens += message_tokens(m)
            if key in self.seen:
                cached = tokens
            keys.append(key)
        for key in keys:
            self.seen[key] = None
            self.seen.move_to_end(key)
        while len(self.seen) > self.capacity:
            self.seen.popitem(last=False)
        return cached
