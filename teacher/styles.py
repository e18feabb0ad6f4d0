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
policy's replay of the episode sees what it would have seen in the plain style.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agents.replies import split_thinking
from domain.tokens import estimate, message_tokens

STYLES = ("plain", "think", "reasoning_field", "markdown", "tool_object", "diff", "cutoff", "mixed")
MIXED = ("think", "reasoning_field", "markdown", "tool_object", "diff", "cutoff")
THINKING_STYLES = ("think", "reasoning_field", "cutoff")
CORRECTION = "Your reply could not be used:"

# What the drafts inside thinking hold: wrong or dangerous, so that a test can show they were not used.
DRAFT_MARK = "gymforge-draft"
DRAFT_COMMAND = "rm -rf data && python prepare.py"
DRAFT_DATASET = f"{DRAFT_MARK}/no-such-dataset"
DRAFT_TITLE = f"Predict tomorrow's weather on {DRAFT_DATASET}"
DRAFT_CODE = (f"# {DRAFT_MARK}: a first attempt, not the final file\nimport pandas as pd\n\ndef main(:\n"
              "    frame = pd.read_csv('data/train.csv'\n")
ELIDED = "# ... rest unchanged ..."

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_FILE = re.compile(r"^FILE: (\S+)\n```[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_JSON = re.compile(r"^```json\n(.*?)\n^```[ \t]*$", re.DOTALL | re.MULTILINE)
CANON_ACTION = re.compile(r"\A(THOUGHT: |DISCUSSION\n)(.*?)\n\n```(bash)?\n(.*?)\n```\n?\Z", re.DOTALL)
CONSOLE = re.compile(r"^```console[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)


class StyleError(ValueError):
    """An unknown style name."""


def check_style(style: str) -> str:
    if style not in STYLES:
        raise StyleError(f"unknown teacher style {style!r}: one of {', '.join(STYLES)}")
    return style


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
        return message_tokens(m) + estimate(str(m.get("reasoning_content") or m.get("reasoning") or ""))


def request_rng(purpose: str, messages: Sequence[dict[str, Any]], seed: int | None) -> random.Random:
    blob = json.dumps([purpose, seed, list(messages)], sort_keys=True, default=str)
    return random.Random(int(hashlib.sha256(blob.encode()).hexdigest()[:16], 16))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def conversation_key(messages: Sequence[dict[str, Any]], salt: str = "") -> str:
    return hashlib.sha256((salt + json.dumps(list(messages), sort_keys=True, default=str)).encode()).hexdigest()


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
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    args = call["function"].get("arguments")
    for _ in range(2):
        if isinstance(args, str):
            try:
                decoded = json.loads(args)
            except json.JSONDecodeError:
                break
            if isinstance(decoded, dict):
                args = decoded
                break
            args = decoded
    if isinstance(args, dict):
        return {**call, "function": {**call["function"], "arguments": json.dumps(args)}}
    return call


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


# --- thinking with drafts -----------------------------------------------------------------------------


OPENERS = ("Okay, let me work through this.", "Let me think about what is being asked here.",
           "Alright, first I need to understand the request.", "Hmm. Let me plan this step by step.")


def thinking(canon: Canon, rng: random.Random) -> str:
    """Plausible thinking holding a WRONG or dangerous draft, then the reasoning towards the real answer."""
    opener = rng.choice(OPENERS)
    if canon.kind == "action":
        tag = "" if canon.mlgym else "bash"
        first = canon.command.splitlines()[0] if canon.command else ""
        return (f"{opener} The quickest way to a clean state might be to rebuild everything:\n\n"
                f"```{tag}\n{DRAFT_COMMAND}\n```\n\nNo, wait. That deletes the data, and prepare.py is not in the "
                f"workspace anyway. {canon.thought}\n\nSo the command is `{first}`.")
    if canon.kind == "topics":
        draft = [{"title": DRAFT_TITLE, "description": "A draft.", "task_type": "tabular_regression",
                  "candidate_datasets": [{"id": DRAFT_DATASET, "source": "hub"}]}]
        return (f"{opener} A first draft of the list:\n\n```json\n{json.dumps(draft, indent=1)}\n```\n\n"
                f"But {DRAFT_DATASET} is not a dataset I know, and the domain is not weather. I should ground "
                f"every topic in a dataset I actually know, with its task type and label column.")
    if canon.kind == "bundle":
        meta = {"name": f"{DRAFT_MARK} task", "metric": "draft_metric", "direction": "maximize",
                "training_timeout": 1, "description": "draft", "dataset_description": "draft"}
        return (f"{opener} Sketching the metadata and prepare.py first:\n\n```json\n{json.dumps(meta)}\n```\n\n"
                f"FILE: prepare.py\n```python\n{DRAFT_CODE}```\n\nThat prepare.py does not even parse, and the metric "
                f"is made up. Let me write the files properly, following the card's columns and splits.")
    if canon.kind == "fix":
        name = next(iter(canon.files), "baseline.py")
        return (f"{opener} Maybe the simplest fix:\n\nEXPLANATION: {DRAFT_MARK} rewrite\nFILE: {name}\n```python\n"
                f"{DRAFT_CODE}```\n\nNo, that breaks more than it fixes. Reading the error again: {canon.explanation}")
    return f"{opener} I do not think I can do this one as asked."


def with_think_block(content: str, thought: str, rng: random.Random) -> str:
    """`<think>…</think>` before the content; a third of the time without the opening tag (the chat
    template opened it in the prompt)."""
    opening = "" if rng.random() < 1 / 3 else "<think>\n"
    return f"{opening}{thought}\n</think>\n\n{content}"


# --- markdown habits ----------------------------------------------------------------------------------


def fence_tag(name: str) -> str:
    return {"py": "python", "csv": "csv", "json": "json", "md": "markdown"}.get(name.rpartition(".")[2], "")


FILE_HEADERS = (
    lambda name, tag, body: f"### {name}\n\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"**FILE: {name}**\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"FILE: `{name}`\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"```{tag} title=\"{name}\"\n{body}\n```",
    lambda name, tag, body: f"**{name}**\n\n```{tag}\n{body}\n```",
    lambda name, tag, body: f"## File: {name}\n```{tag}\n{body}\n```",
)


def markdown_files(files: dict[str, str], rng: random.Random, headers: Sequence[int] | None = None) -> str:
    choices = list(headers) if headers is not None else list(range(len(FILE_HEADERS)))
    start = rng.randrange(len(choices))
    return "\n\n".join(FILE_HEADERS[choices[(start + i) % len(choices)]](name, fence_tag(name), body)
                       for i, (name, body) in enumerate(files.items()))


def trailing_comma(dumped: str) -> str:
    """A JSON text with a comma after its last element (a list or object dumped with indent)."""
    return dumped[:-2] + ",\n" + dumped[-1] if len(dumped) > 2 else dumped


def markdown_topics(topics: list[Any], rng: random.Random) -> str:
    listed = json.dumps(topics, indent=2)
    wrapped = json.dumps({"topics": topics}, indent=2)
    variant = rng.randrange(5)
    if variant == 0:
        return f"Here are {len(topics)} research topics grounded in datasets I know.\n\n```JSON\n{listed}\n```\n"
    if variant == 1:
        return f"```\n{wrapped}\n```\n"
    if variant == 2:
        return f"Sure! Here they are:\n\n```json\n{trailing_comma(listed)}\n```\n\nLet me know if you want more."
    if variant == 3:
        return f"```json\n// the proposed topics\n{wrapped}\n```\n"
    return wrapped + "\n"


def markdown_bundle(canon: Canon, rng: random.Random) -> str:
    meta = json.dumps(canon.meta, indent=2)
    fence = rng.choice(("```JSON", "```"))
    return (f"I'll set this task up as follows. The metadata:\n\n{fence}\n{meta}\n```\n\n### The files\n\n"
            f"Each file follows the card's columns and splits.\n\n{markdown_files(canon.files, rng)}\n\n"
            "Let me know if anything should change.\n")


def markdown_fix(canon: Canon, rng: random.Random) -> str:
    if not canon.files:
        return canon.text
    return f"EXPLANATION: {canon.explanation}\n\n{markdown_files(canon.files, rng, headers=(0, 2, 4))}\n"


def markdown_action(canon: Canon, rng: random.Random) -> str:
    single = "\n" not in canon.command
    variant = rng.randrange(3 if single else 2)
    block = {0: f"```sh\n{canon.command}\n```", 1: f"```shell\n{canon.command}\n```",
             2: f"```console\n$ {canon.command}\n```"}[variant]
    return f"THOUGHT: {canon.thought}\n\n{block}\n"


# --- diffs and elisions -------------------------------------------------------------------------------


def prompt_files(messages: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The files a fix_task prompt shows (`FILE: name` + a fenced block)."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    return canon_files(prompt)


def corrected(messages: Sequence[dict[str, Any]]) -> bool:
    return any(m.get("role") == "user" and CORRECTION in str(m.get("content") or "") for m in messages)


def unified(name: str, old: str, new: str) -> str:
    lines = difflib.unified_diff((old + "\n").splitlines(keepends=True), (new + "\n").splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    return "".join(lines).rstrip("\n")


def elided(old: str, new: str) -> str:
    """The new file's changed lines with two lines around them, the rest replaced by an elision comment."""
    a, b = old.splitlines(), new.splitlines()
    changed = [j for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes() if tag != "equal"
               for j in range(j1, max(j2, j1 + 1))]
    first, last = (max(0, min(changed) - 2), min(len(b), max(changed) + 3)) if changed else (0, min(len(b), 5))
    kept = b[first:last]
    return "\n".join([*([ELIDED] if first > 0 else []), *kept, ELIDED])


def diff_fix(canon: Canon, originals: dict[str, str], rng: random.Random) -> str:
    if not canon.files:
        return canon.text
    variant = rng.randrange(3)
    parts = [f"EXPLANATION: {canon.explanation}", ""]
    for name, body in canon.files.items():
        old = originals.get(name, "").rstrip("\n")
        if variant == 0:
            parts += [f"```diff\n{unified(name, old, body)}\n```", ""]
        elif variant == 1:
            parts += [f"FILE: {name}", f"```{fence_tag(name)}\n{elided(old, body)}\n```", ""]
        else:
            parts += [f"FILE: {name}", f"```\n{unified(name, old, body)}\n```", ""]
    return "\n".join(parts)


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


def odd_tool_calls(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The bash calls as other servers emit them: arguments an object (no id), a twice-encoded string, an
    object with an id, or the calls written in the text Hermes-style with no tool_calls field."""
    variant = rng.randrange(4)
    calls = message["tool_calls"]
    if variant == 3:
        text = "\n".join("<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                                       "arguments": json.loads(c["function"]["arguments"])})
                         + "\n</tool_call>" for c in calls)
        return {"role": "assistant", "content": f"{message.get('content') or ''}\n\n{text}".strip()}
    out = []
    for c in calls:
        args = json.loads(c["function"]["arguments"])
        if variant == 0:
            out.append({"type": "function", "function": {"name": c["function"]["name"], "arguments": args}})
        elif variant == 1:
            out.append({**c, "function": {**c["function"], "arguments": json.dumps(json.dumps(args))}})
        else:
            out.append({**c, "function": {**c["function"], "arguments": args}})
    return {**message, "tool_calls": out}


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
