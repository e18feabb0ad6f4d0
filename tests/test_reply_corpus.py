"""A corpus of reply styles, each run as a model would send it: wrapped in a chat.completion body, read by
`agents.llm.parse_reply` (thinking and tool calls taken apart), then by the role's real parser. Every case
says what it must read as, or which correction (a substring of the ReplyError / FormatError) it must get.

The rule under test: tolerant where the reading is unambiguous, strict where it is not; nothing inside
thinking or inside a code block counts as an action, a file or JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents.coder import parse_bundle
from agents.debugger import parse_fix
from agents.llm import Completion, Reply, parse_reply
from agents.proposer import parse_topics
from agents.replies import ReplyError
from agents.solver.actions import FormatError, parse_tool_calls
from agents.solver.interface import BashInterface

# --- the canonical pieces, from which each style is written ---------------------------------------------

TOPIC = {"title": "Classify species on iris", "description": "Predict the species from four measurements.",
         "task_type": "tabular_classification",
         "candidate_datasets": [{"id": "iris", "source": "builtin", "label_column": "species",
                                 "input_columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}]}
TOPIC2 = {**TOPIC, "title": "Predict diabetes progression", "task_type": "tabular_regression",
          "description": "See https://example.org/diabetes // not a comment, it is in a string."}
DRAFT_TOPIC = {**TOPIC, "title": "DRAFT topic the model dropped"}
TOPICS = [TOPIC, TOPIC2]
TITLES = [TOPIC["title"], TOPIC2["title"]]

META = {"name": "Iris species", "metric": "accuracy", "direction": "maximize", "training_timeout": 300,
        "description": "Classify the species. {dataset_docs}\nSUBMISSION FORMAT: id,species",
        "dataset_description": "Fisher's iris."}
FILES = {  # contents that look like headers, files and fences, all inside blocks: they must stay text
    "prepare.py": "import pandas as pd\n# ### Step 2\n# FILE: fake.py\nprint('prepare')\n",
    "baseline.py": 'FENCE = "```"\nLR = 0.1\nprint("baseline", LR)\n',
    "evaluate.py": "import json\nprint(json.dumps({'accuracy': 1.0}))\n",
    "sample_submission.csv": "id,species\n0,setosa\n",
}
KNOWN = tuple(FILES)
TAG_FILES = {**FILES, "prepare.py": 'import re\nTHINK = re.compile(r"<think>.*?</think>", re.S)\n'
                                    'CALL = "<tool_call>{\\"name\\": \\"bash\\"}</tool_call>"\nOPEN = "<think>"\n'}
FIXED = "import json\nimport sys\nprint(json.dumps({'accuracy': 0.9}))\n"
LANG = {"py": "python", "csv": "csv"}


def lang(name: str) -> str:
    return LANG[name.rsplit(".", 1)[1]]


def fence(body: str, info: str = "", mark: str = "```") -> str:
    return f"{mark}{info}\n{body.rstrip(chr(10))}\n{mark}\n"


def json_block(value: Any, tag: str = "json") -> str:
    return fence(json.dumps(value, indent=1), tag)


def bundle(header: str = "FILE: {name}", info: str = "{lang}", meta: str | None = None, mark: str = "```",
           files: dict[str, str] | None = None, between: str = "\n") -> str:
    """A coder reply: the metadata block, then each file announced by `header` (and/or the fence's `info`)."""
    parts = [meta if meta is not None else json_block(META)]
    for name, body in (files or FILES).items():
        head = header.format(name=name) + between if header else ""
        parts.append(head + fence(body, info.format(name=name, lang=lang(name)), mark))
    return "\n".join(parts)


def fix(body: str = FIXED, header: str = "FILE: evaluate.py", info: str = "python", why: str = "EXPLANATION: "
        "evaluate.py printed two objects.\n\n") -> str:
    return why + header + "\n" + fence(body, info)


THINK_DRAFTS = ("Let me draft first.\n" + fence("rm -rf data && python prepare.py", "bash")
                + "FILE: prepare.py\n" + fence("DRAFT = True", "python") + json_block([DRAFT_TOPIC])
                + json_block({**META, "name": "DRAFT"}))
DIFF = "--- a/evaluate.py\n+++ b/evaluate.py\n@@ -1,2 +1,3 @@\n import json\n+import sys\n print(1)\n"


def tool(args: Any, name: str = "bash", call_id: str | None = "call_1") -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": args}}
    return {**call, "id": call_id} if call_id else call


# --- the corpus -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    role: str  # topics | bundle | fix | thought_action | tool_call
    content: str | None
    expect: Any = None  # the reading (role-specific, see `reading`)
    refuse: str = ""  # else: a substring of the correction
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str = "stop"


CASES = [
    # proposer: topics
    Case("topics-canonical", "topics", "Here are the topics.\n" + json_block(TOPICS), TITLES),
    Case("topics-JSON-uppercase-tag", "topics", json_block(TOPICS, "JSON"), TITLES),
    Case("topics-untagged-fence", "topics", json_block(TOPICS, ""), TITLES),
    Case("topics-bare-json", "topics", json.dumps(TOPICS), TITLES),
    Case("topics-tilde-fence", "topics", fence(json.dumps(TOPICS), "json", "~~~"), TITLES),
    Case("topics-trailing-commas-and-line-comments", "topics",
         "```json\n[\n " + json.dumps(TOPIC) + ", // the first\n " + json.dumps(TOPIC2) + ",\n]\n```\n", TITLES),
    Case("topics-block-comment-and-slashes-inside-a-string", "topics",
         "```json\n/* two topics */\n" + json.dumps(TOPICS) + "\n```", TITLES),
    Case("topics-structured-output-bare-object", "topics", json.dumps({"topics": TOPICS}), TITLES),
    Case("topics-wrapped-in-topics-object", "topics", json_block({"topics": TOPICS}), TITLES),
    Case("topics-wrapped-with-trailing-comma", "topics",
         "```JSON\n{\"topics\": " + json.dumps(TOPICS) + ",}\n```", TITLES),
    Case("topics-wrapped-in-one-list-valued-key", "topics", json_block({"result": TOPICS, "count": 2}), TITLES),
    Case("topics-object-with-several-arrays", "topics", json_block({"easy": [TOPIC], "hard": [TOPIC2]}),
         refuse="several arrays"),
    Case("topics-one-topic-object", "topics", json_block(TOPIC), [TOPIC["title"]]),
    Case("topics-two-different-arrays", "topics", json_block([TOPIC]) + "\nor\n" + json_block([TOPIC2]),
         refuse="send exactly one"),
    Case("topics-same-array-twice", "topics", json_block(TOPICS) + "\nAgain:\n" + json_block(TOPICS), TITLES),
    Case("topics-gpt-chatty-bare-json-after-prose", "topics",
         "Sure! Here are two topics:\n\n" + json.dumps(TOPICS, indent=2) + "\n\nLet me know if you need more.",
         TITLES),
    Case("topics-claude-prose-around-a-block", "topics",
         "I looked at the hints.\n\n" + json_block(TOPICS) + "\nBoth datasets are small.", TITLES),
    Case("topics-qwen3-think-with-draft-json", "topics", "<think>\n" + THINK_DRAFTS + "</think>\n\n"
         + json_block(TOPICS), TITLES),
    Case("topics-template-opened-think", "topics", THINK_DRAFTS + "</think>\n" + json_block(TOPICS), TITLES),
    Case("topics-reasoning-content-with-draft", "topics", json_block(TOPICS), TITLES,
         reasoning_content=THINK_DRAFTS),
    Case("topics-cut-off-inside-thinking", "topics", "<think>\n" + THINK_DRAFTS, refuse="expected a ```json block",
         finish="length"),
    Case("topics-prose-only", "topics", "Topic one: classify irises. Topic two: diabetes.",
         refuse="expected a ```json block"),
    Case("topics-json-in-a-python-block-is-not-json", "topics", fence(f"topics = {json.dumps(TOPICS)}", "python"),
         refuse="expected a ```json block"),
    Case("topics-invalid-json", "topics", "```json\n[{\"title\": \"x\" \"description\": 1}]\n```",
         refuse="not valid JSON"),
    Case("topics-invalid-topic", "topics", json_block([{**TOPIC, "task_type": "x"}]),
         refuse="topic 0 is invalid: task_type"),
    Case("topics-empty-array", "topics", json_block([]), refuse="send at least one topic"),

    # coder: metadata and files
    Case("bundle-canonical", "bundle", bundle(), FILES),
    Case("bundle-untagged-file-fences", "bundle", bundle(info=""), FILES),
    Case("bundle-markdown-h3-headers", "bundle", bundle("### {name}"), FILES),
    Case("bundle-h2-file-colon-headers", "bundle", bundle("## File: {name}"), FILES),
    Case("bundle-bold-name-headers", "bundle", bundle("**{name}**"), FILES),
    Case("bundle-code-span-headers", "bundle", bundle("`{name}`"), FILES),
    Case("bundle-FILE-with-backticks", "bundle", bundle("FILE: `{name}`"), FILES),
    Case("bundle-bold-FILE", "bundle", bundle("**FILE: {name}**"), FILES),
    Case("bundle-numbered-bold-code-span", "bundle", bundle("1. **`{name}`**"), FILES),
    Case("bundle-bare-name-lines", "bundle", bundle("{name}:"), FILES),
    Case("bundle-e.g.-line-is-no-header", "bundle", bundle() + "\ne.g.:\n" + fence("0,setosa", "text"),
         FILES),
    Case("bundle-numbered-h3-headers", "bundle", bundle("### 1. {name}"), FILES),
    Case("bundle-blank-lines-between-header-and-fence", "bundle", bundle(between="\n\n\n"), FILES),
    Case("bundle-info-title", "bundle", bundle("", '{lang} title="{name}"'), FILES),
    Case("bundle-info-second-word", "bundle", bundle("", "{lang} {name}"), FILES),
    Case("bundle-info-is-the-name", "bundle", bundle("", "{name}"), FILES),
    Case("bundle-info-lang-colon-name", "bundle", bundle("", "{lang}:{name}"), FILES),
    Case("bundle-header-and-info-agree", "bundle", bundle("### {name}", '{lang} title="{name}"'), FILES),
    Case("bundle-tilde-fences", "bundle", bundle(mark="~~~"), FILES),
    Case("bundle-untagged-meta-with-trailing-comma", "bundle",
         bundle(meta="```\n" + json.dumps(META)[:-1] + ",}\n```\n"), FILES),
    Case("bundle-meta-under-a-step-heading", "bundle", bundle(meta="### Step 1: metadata\n" + json_block(META)),
         FILES),
    Case("bundle-whole-json-structured-output", "bundle", json.dumps({**META, "files": FILES}), FILES),
    Case("bundle-whole-json-in-a-block", "bundle", json_block({**META, "files": FILES}), FILES),
    Case("bundle-four-backtick-fence-holds-inner-fences", "bundle",
         bundle(files={**FILES, "prepare.py": '"""Usage:\n```bash\npython prepare.py\n```\n"""\nprint(1)\n'},
                mark="````"),
         {**FILES, "prepare.py": '"""Usage:\n```bash\npython prepare.py\n```\n"""\nprint(1)\n'}),
    Case("bundle-example-output-json-is-not-metadata", "bundle",
         bundle() + "\nevaluate.py prints, e.g.:\n" + json_block({"accuracy": 0.97}), FILES),
    Case("bundle-qwen3-think-with-draft-files", "bundle", "<think>\n" + THINK_DRAFTS + "\n</think>\n" + bundle(),
         FILES),
    Case("bundle-reasoning-content-with-draft-files", "bundle", bundle(), FILES, reasoning_content=THINK_DRAFTS),
    # a file that handles chat-template text holds the tags themselves: they stay the file's text
    Case("bundle-file-holding-think-and-tool-call-tags", "bundle", bundle(files=TAG_FILES), TAG_FILES),
    Case("bundle-file-holding-a-closing-think-tag-first", "bundle",
         bundle(meta="", files={"prepare.py": 'END = "</think>"\n'}) + "\n" + json_block(META)
         + bundle(meta="", files={k: v for k, v in FILES.items() if k != "prepare.py"}),
         {**FILES, "prepare.py": 'END = "</think>"\n'}),
    Case("bundle-extra-files-in-folders-and-dunder-names", "bundle",
         bundle("**FILE:** {name}", files={**FILES, "src/__init__.py": "", "_util.py": "X = 1\n"}),
         {**FILES, "src/__init__.py": "\n", "_util.py": "X = 1\n"}),
    Case("bundle-metadata-only-in-thinking", "bundle", "<think>\n" + json_block(META) + "</think>\n"
         + bundle(meta=""), refuse="expected a ```json block holding the task's metadata"),
    Case("bundle-header-with-fixed-note", "bundle", bundle("### {name} (fixed)"), refuse="FILE: prepare.py"),
    Case("bundle-header-with-spaces", "bundle", bundle(files={"my prepare.py": "x = 1\n", **FILES}),
         refuse="plain relative path"),
    Case("bundle-header-escaping-the-task", "bundle", bundle(files={"../prepare.py": "x = 1\n", **FILES}),
         refuse="plain relative path"),
    Case("bundle-absolute-header", "bundle", bundle(files={"/etc/prepare.py": "x = 1\n", **FILES}),
         refuse="plain relative path"),
    Case("bundle-same-file-twice", "bundle", bundle() + "\nFILE: baseline.py\n" + fence("LR = 0.2", "python"),
         refuse="baseline.py is given twice"),
    Case("bundle-prose-header-is-no-header", "bundle",
         bundle().replace("FILE: prepare.py\n", "Here is `prepare.py`:\n"), refuse="`FILE: prepare.py`"),
    Case("bundle-elided-file", "bundle", bundle(files={**FILES, "baseline.py": "LR = 0.1\n# ... rest of the code ...\n"}),
         refuse="baseline.py is not whole"),
    Case("bundle-missing-file", "bundle", bundle(files={k: v for k, v in FILES.items() if k != "evaluate.py"}),
         refuse="missing file(s) ['evaluate.py']"),
    Case("bundle-header-and-info-disagree", "bundle", bundle("### {name}", 'python title="main.py"'),
         refuse="announced as prepare.py but its fence names main.py"),
    Case("bundle-two-metadata-objects", "bundle", json_block({**META, "name": "Other"}) + bundle(),
         refuse="send exactly one"),
    Case("bundle-FILE-line-without-a-block", "bundle", bundle() + "\nFILE: notes.txt\n(see above)\n",
         refuse="not followed directly by a fenced block"),
    Case("bundle-cut-off-in-a-file", "bundle", bundle()[:-12], refuse="never closed", finish="length"),
    Case("bundle-diff-instead-of-files", "bundle", json_block(META) + fence(DIFF, "diff"), refuse="is a diff"),
    Case("bundle-files-in-json-and-blocks", "bundle", bundle(meta=json_block({**META, "files": FILES})),
         refuse="both in the JSON"),
    Case("bundle-meta-with-a-bad-direction", "bundle", bundle(meta=json_block({**META, "direction": "up"})),
         refuse="direction (maximize or minimize)"),
    Case("bundle-meta-without-submission-format", "bundle",
         bundle(meta=json_block({**META, "description": "Classify the species, please. {dataset_docs}"})),
         refuse="SUBMISSION FORMAT"),

    # debugger: fixes
    Case("fix-canonical", "fix", fix(), {"evaluate.py": FIXED}),
    Case("fix-FILE-with-backticks", "fix", fix(header="FILE: `evaluate.py`"), {"evaluate.py": FIXED}),
    Case("fix-bold-FILE-label-and-code-span", "fix", fix(header="**FILE:** `evaluate.py`"), {"evaluate.py": FIXED}),
    Case("fix-markdown-h3", "fix", fix(header="### evaluate.py"), {"evaluate.py": FIXED}),
    Case("fix-bold-EXPLANATION", "fix", fix(why="**EXPLANATION:** evaluate.py printed two objects.\n"),
         {"evaluate.py": FIXED}),
    Case("fix-info-title-only", "fix", "EXPLANATION: x\n" + fence(FIXED, 'python title="evaluate.py"'),
         {"evaluate.py": FIXED}),
    Case("fix-two-files", "fix", fix() + "\nFILE: baseline.py\n" + fence("LR = 0.2", "python"),
         {"evaluate.py": FIXED, "baseline.py": "LR = 0.2\n"}),
    Case("fix-quoted-error-in-text-block", "fix", "The error:\n" + fence("KeyError: 'spcies'", "text") + fix(),
         {"evaluate.py": FIXED}),
    Case("fix-suggested-command-in-bash-block", "fix", fix() + "\nThen run:\n" + fence("python evaluate.py", "bash"),
         {"evaluate.py": FIXED}),
    Case("fix-step-heading-before-a-command-is-no-header", "fix",
         fix() + "\n### Step 2: run evaluate.py\n" + fence("python evaluate.py", "bash"), {"evaluate.py": FIXED}),
    Case("fix-file-name-right-before-a-bash-block", "fix", fix() + "\n**baseline.py**\n" + fence("python baseline.py", "bash"),
         refuse="announce it with the line `FILE: baseline.py`"),
    Case("fix-quoted-FILE-inside-a-block-is-text", "fix",
         "You sent:\n" + fence("FILE: prepare.py\nprint('old')", "text") + fix(), {"evaluate.py": FIXED}),
    Case("fix-think-with-draft-diff", "fix", "<think>\n" + fence(DIFF, "diff") + "FILE: prepare.py\n"
         + fence("DRAFT", "python") + "</think>\n" + fix(), {"evaluate.py": FIXED}),
    Case("fix-reasoning-content-with-draft-elision", "fix", fix(), {"evaluate.py": FIXED},
         reasoning_content="FILE: evaluate.py\n" + fence("import sys\n# ... rest unchanged ...", "python")),
    Case("fix-diff-block", "fix", "EXPLANATION: add sys\n" + fence(DIFF, "diff"), refuse="send each changed file whole"),
    Case("fix-patch-tag", "fix", "EXPLANATION: add sys\n" + fence(DIFF, "patch"), refuse="is a diff"),
    Case("fix-untagged-diff-under-a-header", "fix", fix(DIFF, info=""), refuse="is a diff"),
    Case("fix-bare-diff", "fix", DIFF, refuse="the reply is a diff"),
    Case("fix-rest-unchanged", "fix", fix("import sys\n# ... rest unchanged ...\n"), refuse="evaluate.py is not whole"),
    Case("fix-existing-code-slashes", "fix", fix("import sys\n// ... existing code ...\n"), refuse="not whole"),
    Case("fix-same-as-before", "fix", fix("import sys\n# (same as before)\n"), refuse="not whole"),
    Case("fix-lone-dots-comment", "fix", fix("import sys\n# ...\nprint(1)\n"), refuse="not whole"),
    Case("fix-explanation-only", "fix", "EXPLANATION: the files look fine to me.", refuse="changes no file"),
    Case("fix-files-are-fine-prose", "fix", "I checked everything; no change is needed.", refuse="changes no file"),
    Case("fix-unknown-file", "fix", fix(header="FILE: eval.py"), refuse="not a file of the task"),
    Case("fix-fixed-suffix-in-header", "fix", fix(header="FILE: evaluate.py (fixed)"), refuse="`FILE: evaluate.py`"),
    Case("fix-gpt-prose-header", "fix", "Here is the corrected `evaluate.py`:\n" + fence(FIXED, "python"),
         refuse="put the line `FILE: evaluate.py`"),
    Case("fix-snippet-before-the-file", "fix", "The bad line:\n" + fence("print(a, b)", "python") + fix(),
         refuse="has no file header"),
    Case("fix-cut-off-in-second-file", "fix", fix() + "\nFILE: baseline.py\n```python\nLR = 0.",
         refuse="never closed", finish="length"),

    # solver: THOUGHT and one command block
    Case("cmd-canonical", "thought_action", "THOUGHT: list the files.\n\n" + fence("ls -la", "bash"), "ls -la"),
    Case("cmd-sh", "thought_action", "Look around.\n" + fence("ls", "sh"), "ls"),
    Case("cmd-shell", "thought_action", fence("cat data/train.csv | head", "shell"), "cat data/train.csv | head"),
    Case("cmd-zsh", "thought_action", fence("pwd", "zsh"), "pwd"),
    Case("cmd-Bash-uppercase", "thought_action", fence("python baseline.py", "Bash"), "python baseline.py"),
    Case("cmd-untagged", "thought_action", fence("validate"), "validate"),
    Case("cmd-tilde-fence", "thought_action", fence("submit", "bash", "~~~"), "submit"),
    Case("cmd-console-with-prompts", "thought_action", fence("$ python prepare.py", "console"), "python prepare.py"),
    Case("cmd-console-without-prompt", "thought_action", fence("ls data", "console"), "ls data"),
    Case("cmd-bash-with-prompt", "thought_action", fence("$ ls -la", "bash"), "ls -la"),
    Case("cmd-console-mixed-with-output", "thought_action", fence("$ ls\ndata\nbaseline.py", "console"),
         refuse="mixes `$` commands with their output"),
    Case("cmd-python-block-is-no-command", "thought_action", "Look:\n" + fence("print(1)", "python"),
         refuse="holds no command"),
    Case("cmd-text-block-is-no-command", "thought_action", fence("ls", "text"), refuse="holds no command"),
    Case("cmd-json-block-is-no-command", "thought_action", json_block({"command": "ls"}), refuse="holds no command"),
    Case("cmd-console-two-prompted-lines", "thought_action", fence("$ cd data\n$ ls", "console"), "cd data\nls"),
    Case("cmd-python-example-beside-the-command", "thought_action",
         "I will change:\n" + fence("LR = 0.01", "python") + "\n" + fence("sed -i 's/0.1/0.01/' baseline.py", "bash"),
         "sed -i 's/0.1/0.01/' baseline.py"),
    Case("cmd-hallucinated-output-block", "thought_action", fence("ls", "bash") + "Output:\n" + fence("data", "output"),
         "ls"),
    Case("cmd-two-commands", "thought_action", fence("ls", "bash") + "then\n" + fence("pwd", "bash"),
         refuse="2 commands"),
    Case("cmd-example-inside-a-markdown-block", "thought_action",
         "The format is:\n````markdown\n```bash\nrm -rf /\n```\n````\nSo:\n" + fence("ls", "bash"), "ls"),
    Case("cmd-heredoc-with-inner-fence", "thought_action",
         "````bash\ncat > notes.md <<'EOF'\n```\ncode\n```\nEOF\n````", "cat > notes.md <<'EOF'\n```\ncode\n```\nEOF"),
    Case("cmd-qwen3-think-with-draft-command", "thought_action",
         "<think>\n" + THINK_DRAFTS + "</think>\nTHOUGHT: run it.\n" + fence("python prepare.py", "bash"),
         "python prepare.py"),
    Case("cmd-reasoning-content-with-draft-command", "thought_action", fence("python prepare.py", "bash"),
         "python prepare.py", reasoning_content=THINK_DRAFTS),
    Case("cmd-cut-off-inside-thinking", "thought_action", "<think>\n" + THINK_DRAFTS, refuse="holds no command",
         finish="length"),
    Case("cmd-cut-off-mid-command", "thought_action", "THOUGHT: train.\n```bash\npython baseline.py --lr",
         refuse="not closed", finish="length"),
    Case("cmd-empty-block", "thought_action", fence("", "bash"), refuse="empty"),

    # solver: the bash tool
    Case("tool-openai-string-arguments", "tool_call", "I list.", "ls", tool_calls=[tool('{"command": "ls"}')]),
    Case("tool-arguments-as-object", "tool_call", None, "ls -la", tool_calls=[tool({"command": "ls -la"})]),
    Case("tool-double-encoded-arguments", "tool_call", "", "pwd", tool_calls=[tool(json.dumps('{"command": "pwd"}'))]),
    Case("tool-without-id", "tool_call", "", "ls", tool_calls=[tool('{"command": "ls"}', call_id=None)]),
    Case("tool-hermes-in-text", "tool_call", 'Let me look.\n<tool_call>\n{"name": "bash", "arguments": '
         '{"command": "ls data"}}\n</tool_call>', "ls data"),
    Case("tool-think-draft-and-a-call", "tool_call", "<think>\n" + THINK_DRAFTS + "</think>\n", "validate",
         tool_calls=[tool({"command": "validate"})]),
    Case("tool-two-calls", "tool_call", "", refuse="2 tool calls",
         tool_calls=[tool({"command": "ls"}), tool({"command": "pwd"}, call_id="c2")]),
    Case("tool-unknown-tool", "tool_call", "", refuse="unknown tool 'python'",
         tool_calls=[tool({"code": "print(1)"}, name="python")]),
    Case("tool-arguments-not-json", "tool_call", "", refuse="not a JSON object", tool_calls=[tool("ls -la")]),
    Case("tool-arguments-without-command", "tool_call", "", refuse="no `command`", tool_calls=[tool({"cmd": "ls"})]),
    Case("tool-command-as-a-list", "tool_call", "", refuse="no `command` string",
         tool_calls=[tool({"command": ["ls", "-la"]})]),
    Case("tool-hermes-bad-json", "tool_call", "<tool_call>{name: bash}</tool_call>", refuse="unknown tool"),
    Case("tool-answered-in-a-block-instead", "tool_call", fence("ls", "bash"), refuse="calls no tool"),
]


# --- running a case ---------------------------------------------------------------------------------------


def completion_body(case: Case) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": case.content}
    if case.reasoning_content is not None:
        message["reasoning_content"] = case.reasoning_content
    if case.tool_calls:
        message["tool_calls"] = case.tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": case.finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}


def completion_of(reply: Reply) -> Completion:
    return Completion(text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                      cost_usd=0.0, latency_s=0.0, retries=0, tool_calls=reply.tool_calls, reasoning=reply.reasoning,
                      finish_reason=reply.finish_reason)


def reading(case: Case, reply: Reply) -> Any:
    """What the role's parser reads: titles, the bundle's files, the changed files, or the command."""
    if case.role == "topics":
        return [t.title for t in parse_topics(reply.text)]
    if case.role == "bundle":
        meta, written = parse_bundle(reply.text)
        assert (meta.name, meta.metric) == (META["name"], META["metric"])
        return written
    if case.role == "fix":
        return parse_fix(reply.text, KNOWN)[0]
    action = BashInterface(action_format=case.role).parse(completion_of(reply))  # type: ignore[arg-type]
    if case.role == "tool_call":
        assert action.tool_call_id
    return action.command


def test_the_corpus_is_large_and_its_ids_are_unique() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.role for c in CASES} == {"topics", "bundle", "fix", "thought_action", "tool_call"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reply_style(case: Case) -> None:
    reply = parse_reply(completion_body(case))
    assert "DRAFT" not in reply.text and "rm -rf data" not in reply.text  # thinking never reaches the parser
    if case.reasoning_content or (case.content or "").lstrip().startswith("<think>"):
        assert reply.reasoning
    assert completion_of(reply).cut_off == (case.finish == "length")
    if case.refuse:
        with pytest.raises((ReplyError, FormatError)) as exc:
            reading(case, reply)
        assert case.refuse in str(exc.value), str(exc.value)
    else:
        assert reading(case, reply) == case.expect


@pytest.mark.parametrize("calls", [
    [{"function": {"name": "bash", "arguments": {"command": "ls"}}}],  # not normalised: an object
    [{"name": "bash", "arguments": '{"command": "ls"}'}],  # no "function" wrapper
])
def test_tool_calls_a_caller_did_not_normalise_are_read(calls: list[dict[str, Any]]) -> None:
    assert parse_tool_calls("", calls).command == "ls"


@pytest.mark.parametrize("calls", [
    [None], ["bash"], [{"function": None}], [{"function": {"name": "bash", "arguments": 5}}],
    [{"function": {"name": "bash", "arguments": ["ls"]}}], [{"function": {"name": "bash", "arguments": None}}],
    [{"function": {"name": "bash", "arguments": '"ls"'}}], [{"function": {"name": None}}],
    {"function": {"name": "bash", "arguments": '{"command": "ls"}'}}, "bash", None,
])
def test_tool_call_junk_is_only_ever_a_format_error(calls: list[Any]) -> None:
    with pytest.raises(FormatError):
        parse_tool_calls("", calls)


# --- the pure pieces the corpus rests on -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": 1,}', {"a": 1}),
    ('[1, 2, // two\n]', [1, 2]),
    ('{"url": "http://x/y", /* c */ "b": [3,],}', {"url": "http://x/y", "b": [3]}),
    ('{"s": "a \\" , ] // not a comment"}', {"s": 'a " , ] // not a comment'}),
])
def test_lenient_json_leaves_strings_alone(text: str, value: Any) -> None:
    from agents.reply_json import loads

    assert loads(text) == value


def test_blocks_follow_commonmark_fences() -> None:
    from agents.reply_blocks import scan

    text = ("```python\na\n````\n"  # a longer closing fence closes
            "```json```inline is no fence\n"  # a backtick in a backtick fence's info: not a fence
            "    ```\n    indented code, no fence\n    ```\n"  # four spaces: not a fence
            "~~~\n```\nstill inside\n~~~\n")  # a tilde block holds backtick lines
    blocks = scan(text).blocks
    assert [(b.tag, b.body) for b in blocks] == [("python", "a"), ("", "```\nstill inside")]
