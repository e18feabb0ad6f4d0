"""The offline teacher's reply styles over HTTP through the client's real path (agents.llm: the openai SDK's
`post`, then `parse_reply`): each style's shape (thinking with wrong drafts, markdown headers, odd tool calls,
diffs, cut-off replies), read back by this file's own small readers to the same content as the plain style;
structured output; cached and reasoning tokens; and solver episodes in each style that replay the same plan."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agents.llm import LLM, Endpoint, Reply, parse_reply
from domain.model_api import PURPOSE_HEADER, TEACHER_MODEL
from domain.tokens import conversation_tokens
from gymforge import config as gconfig
from gymforge.errors import UserError
from prompts import render
from teacher.bundles import write_bundle
from teacher.policy import TeacherConfig, answer
from teacher.server import TeacherServer
from teacher.styles import (
    DRAFT_COMMAND,
    DRAFT_MARK,
    ELIDED,
    MIXED,
    STYLES,
    StyleError,
    Styler,
    check_style,
    policy_messages,
)
from tests.test_teacher import (
    built_catalog,
    iris_card,
    propose_messages,
    string_literals,
    task_id_with,
    write_messages,
)
from tests.test_teacher_solve import BASH_TOOL, FACTS, FakeTask, instance

FENCE = re.compile(r"^```([\w+-]*)([^\n]*)\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
HEADER = re.compile(r"^(?:###\s+|##\s+File:\s+|\*\*FILE:\s+|FILE:\s+`?|\*\*)([\w./-]+?)`?(?:\*\*)?\s*$")


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_catalog(tmp_path_factory)


@asynccontextmanager
async def teacher(style: str, **config: Any) -> AsyncIterator[Asker]:
    async with TeacherServer(config=TeacherConfig(style=style, **config)) as server:
        asker = Asker(server)
        try:
            yield asker
        finally:
            await asker.llm.close()


class Asker:
    """Requests through agents.llm.LLM's client (the SDK's post) as the roles send them; the raw body and
    parse_reply's reading of it."""

    def __init__(self, server: TeacherServer) -> None:
        self.server = server
        self.llm = LLM(Endpoint(base_url=server.base_url, api_key="offline", model=TEACHER_MODEL), "test")

    async def __call__(self, messages: list[dict[str, Any]], purpose: str, **body: Any) -> tuple[dict[str, Any], Reply]:
        raw = await self.llm.client.post(
            "/chat/completions", cast_to=object, options={"headers": {PURPOSE_HEADER: purpose}},
            content=json.dumps({"model": TEACHER_MODEL, "messages": messages, **body}).encode())
        return raw, parse_reply(raw)


def message_of(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["choices"][0]["message"]


# --- this file's own readers of the styled replies (not gymforge's parsers) -------------------------------


def lenient_json(text: str) -> Any:
    blocks = [body for tag, _, body in FENCE.findall(text) if tag.lower() in ("", "json")]
    (body,) = blocks or [text]
    body = re.sub(r"^\s*//.*$", "", body, flags=re.MULTILINE)
    body = re.sub(r",(\s*[\]}])", r"\1", body)
    return json.loads(body)


def topics_of(text: str) -> list[Any]:
    value = lenient_json(text)
    return value["topics"] if isinstance(value, dict) else value


def headed_files(text: str) -> dict[str, str]:
    """Files announced by a header line right above their fence, or in the fence's info string."""
    found: dict[str, str] = {}
    for m in FENCE.finditer(text):
        tag, info, body = m.groups()
        if titled := re.search(r'title="([^"]+)"', info):
            found[titled.group(1)] = body
            continue
        above = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if h := HEADER.match(above):
            found[h.group(1)] = body
    return found


def command_of(reply: Reply) -> str:
    if reply.tool_calls:
        (call,) = reply.tool_calls
        return json.loads(call["function"]["arguments"])["command"]
    blocks = [body for tag, _, body in FENCE.findall(reply.text) if tag.lower() in ("", "bash", "sh", "shell", "console")]
    (body,) = blocks
    return "\n".join(line.removeprefix("$ ") for line in body.splitlines()).strip()


# --- the requests --------------------------------------------------------------------------------------------


def fix_request(root: Path) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    """A fix_task prompt for a draft with a wrong column; the fixed file's name and the file as clean."""
    card, task_id = iris_card(root), task_id_with("wrong_column")
    draft = write_bundle(card, task_id=task_id, defect="wrong_column").files
    clean = write_bundle(card, task_id=task_id).files
    (name,) = [n for n in clean if draft[n] != clean[n]]
    (typo,) = string_literals(draft[name]) - string_literals(clean[name])
    error = (f'Traceback (most recent call last):\n  File "/workspace/{name}", line 20, in <module>\n'
             f'KeyError: "[\'{typo}\'] not in index"')
    prompt = render("fix_task", round=1, max_rounds=3, error=error, card=card, files=draft)
    return [{"role": "user", "content": prompt}], {name: clean[name]}, name


def canonical(purpose: str, messages: list[dict[str, Any]], **config: Any) -> str:
    return answer(purpose, messages, TeacherConfig(**config))


# --- each style's shape ------------------------------------------------------------------------------------


def test_every_style_is_known_to_the_setting_and_the_cli() -> None:
    field = gconfig.Settings.model_fields["teacher_style"].annotation
    assert set(field.__args__) == set(STYLES)  # type: ignore[union-attr]
    assert gconfig.load({"teacher_style": "think"}, environ={}).teacher_style == "think"
    with pytest.raises(UserError, match="teacher_style"):
        gconfig.load({"teacher_style": "poetry"}, environ={})
    with pytest.raises(StyleError, match="one of plain"):
        check_style("poetry")


async def test_plain_is_the_canonical_reply_with_usage_details(catalog_root: Path) -> None:
    messages = propose_messages(catalog_root, count=2)
    async with teacher("plain") as ask:
        raw, reply = await ask(messages, "propose_topics")
    assert reply.text == canonical("propose_topics", messages).strip()
    assert raw["choices"][0]["finish_reason"] == "stop" and not reply.reasoning
    usage = raw["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


@pytest.mark.parametrize("style", ["think", "reasoning_field"])
async def test_thinking_holds_wrong_drafts_and_the_answer_is_canonical(catalog_root: Path, style: str) -> None:
    fix_messages, fixed, name = fix_request(catalog_root)
    requests = [(propose_messages(catalog_root, count=2), "propose_topics", ["Predict tomorrow's weather"]),
                (write_messages(iris_card(catalog_root), "iris-clean01"), "write_task", ["def main(:", "FILE: prepare.py"]),
                (fix_messages, "fix_task", ["def main(:", f"FILE: {name}"]),
                (instance(FACTS), "solve", [DRAFT_COMMAND])]
    opened = set()
    async with teacher(style, defect_rate=0.0) as ask:
        for messages, purpose, drafts in requests:
            raw, reply = await ask(messages, purpose)
            message = message_of(raw)
            assert DRAFT_MARK in reply.reasoning or DRAFT_COMMAND in reply.reasoning
            assert all(d in reply.reasoning for d in drafts), (purpose, reply.reasoning)
            assert reply.text == canonical(purpose, messages, defect_rate=0.0).strip()
            assert DRAFT_MARK not in reply.text and DRAFT_COMMAND not in reply.text and "think>" not in reply.text
            assert raw["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
            if style == "think":
                assert "</think>" in message["content"] and "reasoning_content" not in message
                opened.add(message["content"].startswith("<think>"))
            else:
                assert (message.get("reasoning_content") or message.get("reasoning")) == reply.reasoning
                assert "think>" not in message["content"]
        # in tool-call mode the thinking stays out of the call
        raw, reply = await ask(instance(FACTS), "solve", tools=[BASH_TOOL], seed=1)
        assert command_of(reply) == "ls -l . data" and DRAFT_COMMAND in reply.reasoning
    if style == "think":  # seeds from the request: some replies open the tag, others leave it to the template
        styler = Styler("think")
        text = canonical("solve", instance(FACTS))
        assert {styler.reply("solve", instance(FACTS), text, seed=s).message["content"].startswith("<think>")
                for s in range(12)} == {True, False}


async def test_markdown_habits_read_back_to_the_same_topics_files_and_commands(catalog_root: Path) -> None:
    fix_messages, fixed, name = fix_request(catalog_root)
    write = write_messages(iris_card(catalog_root), "iris-clean01")
    shapes: set[str] = set()
    async with teacher("markdown", defect_rate=0.0) as ask:
        for count in range(1, 7):  # different requests: different habits
            messages = propose_messages(catalog_root, count=count)
            _, reply = await ask(messages, "propose_topics")
            assert topics_of(reply.text) == topics_of(canonical("propose_topics", messages))
            assert not reply.text.startswith("Here are the proposed topics.\n```json")
            shapes.add("wrapped" if '"topics"' in reply.text else "JSON" if "```JSON" in reply.text else
                       "comma" if re.search(r",\s*\]", reply.text) else "list")
        _, reply = await ask(write, "write_task")
        meta, files = lenient_json(reply.text.split("### The files")[0]), headed_files(reply.text)
        plain = canonical("write_task", write, defect_rate=0.0)
        assert meta == lenient_json(plain.split("FILE:")[0])
        assert {n: b.rstrip("\n") for n, b in files.items()} == \
            {n: b.rstrip("\n") for n, b in write_bundle(iris_card(catalog_root), task_id="iris-clean01").files.items()}
        assert "FILE: prepare.py\n```\n" not in reply.text
        _, reply = await ask(fix_messages, "fix_task")
        assert reply.text.startswith("EXPLANATION: KeyError")
        assert {n: b.rstrip("\n") for n, b in headed_files(reply.text).items()} == \
            {n: b.rstrip("\n") for n, b in fixed.items()}
        tags = set()
        for seed in range(8):
            _, reply = await ask(instance(FACTS), "solve", seed=seed + 100 * len(tags))
            assert command_of(reply) == "ls -l . data" and "```bash" not in reply.text
            tags.add(FENCE.search(reply.text).group(1))  # type: ignore[union-attr]
    assert len(shapes) >= 3, shapes
    assert tags == {"sh", "shell", "console"}


async def test_tool_object_sends_arguments_as_objects_twice_encoded_without_ids_or_in_the_text() -> None:
    kinds = set()
    async with teacher("tool_object") as ask:
        for seed in range(16):
            raw, reply = await ask(instance(FACTS), "solve", tools=[BASH_TOOL], seed=seed)
            message = message_of(raw)
            calls = message.get("tool_calls")
            if not calls:
                assert "<tool_call>" in message["content"]
                kinds.add("text")
            else:
                args = calls[0]["function"]["arguments"]
                kinds.add("object" if isinstance(args, dict) else "twice" if isinstance(json.loads(args), str) else "?")
                if "id" not in calls[0]:
                    kinds.add("no id")
            # the client normalises every form: one call, arguments a JSON object string, an id
            (call,) = reply.tool_calls
            assert call["id"] and json.loads(call["function"]["arguments"]) == {"command": "ls -l . data"}
            assert "<tool_call>" not in reply.text
        # without tools offered the replies are text, unchanged
        _, reply = await ask(instance(FACTS), "solve")
        assert reply.text == canonical("solve", instance(FACTS)).strip()
    assert kinds == {"object", "twice", "no id", "text"}


async def test_diff_sends_the_first_fix_as_a_diff_or_elided_then_whole_files(catalog_root: Path) -> None:
    fix_messages, fixed, name = fix_request(catalog_root)
    seen = set()
    async with teacher("diff") as ask:
        for i in range(12):  # different requests (a different round number): different forms
            messages = [{"role": "user", "content": fix_messages[0]["content"].replace("(round 1 of 3)",
                                                                                         f"(round 1 of {3 + i})")}]
            _, reply = await ask(messages, "fix_task")
            if ELIDED in reply.text:
                seen.add("elided")
            elif "```diff" in reply.text:
                seen.add("diff block")
            else:
                assert f"FILE: {name}\n```\n--- a/{name}\n+++ b/{name}\n@@" in reply.text
                seen.add("diff body")
            assert reply.text.startswith("EXPLANATION: KeyError")
        correction = [{"role": "assistant", "content": reply.text},
                      {"role": "user", "content": "Your reply could not be used: send whole files.\nReply again."}]
        _, reply = await ask(fix_messages + correction, "fix_task")
        assert reply.text == canonical("fix_task", fix_messages).strip()
        # other purposes are not diffs
        _, reply = await ask(instance(FACTS), "solve")
        assert reply.text == canonical("solve", instance(FACTS)).strip()
    assert seen == {"elided", "diff block", "diff body"}


async def test_cutoff_cuts_the_first_reply_to_each_request_and_answers_the_reask_in_full(catalog_root: Path) -> None:
    write = write_messages(iris_card(catalog_root), "iris-clean01")
    async with teacher("cutoff", defect_rate=0.0) as ask:
        for messages, purpose in [(write, "write_task"), (instance(FACTS), "solve"),
                                  (propose_messages(catalog_root, count=2), "propose_topics")]:
            raw, reply = await ask(messages, purpose)
            full = canonical(purpose, messages, defect_rate=0.0).strip()
            assert raw["choices"][0]["finish_reason"] == "length"
            # the think style's reply, cut: in its thinking or in the answer, before the answer's closing fence
            whole = Styler("think").reply(purpose, messages, canonical(purpose, messages, defect_rate=0.0)).message
            cut = message_of(raw)["content"]
            assert whole["content"].startswith(cut) and len(cut) < whole["content"].rfind("```")
            # re-asked with the cut reply and a prompt: complete
            again = [*messages, {"role": "assistant", "content": reply.text},
                     {"role": "user", "content": "Your reply was cut off at the length limit. Reply again, shorter."}]
            raw, reply = await ask(again, purpose)
            assert raw["choices"][0]["finish_reason"] == "stop" and reply.text == full
            assert DRAFT_MARK in reply.reasoning or DRAFT_COMMAND in reply.reasoning
            # or re-sent as it was: complete too
            raw, _ = await ask(messages, purpose)
            assert raw["choices"][0]["finish_reason"] == "stop"
        # the next step of an episode is a new request: cut again
        step2 = [*instance(FACTS), {"role": "assistant", "content": full_solve()},
                 {"role": "user", "content": "(no output)"}]
        raw, _ = await ask(step2, "solve")
        assert raw["choices"][0]["finish_reason"] == "length"
        raw, reply = await ask(instance(FACTS), "solve", tools=[BASH_TOOL], seed=5)
        assert message_of(raw).get("tool_calls") is None and raw["choices"][0]["finish_reason"] == "length"


def full_solve() -> str:
    return canonical("solve", instance(FACTS))


async def test_mixed_draws_a_style_per_request_deterministically(catalog_root: Path) -> None:
    async with teacher("mixed") as first, teacher("mixed") as second:
        bodies = []
        for seed in range(6):
            a, _ = await first(instance(FACTS), "solve", seed=seed)
            b, _ = await second(instance(FACTS), "solve", seed=seed)
            assert message_of(a) == message_of(b)
            bodies.append(json.dumps(message_of(a)))
    assert len(set(bodies)) > 1
    styler = Styler("mixed")
    text = full_solve()
    drawn = {json.dumps(styler.reply("solve", instance(FACTS), text, seed=s).message) for s in range(40)}
    assert len(drawn) >= len(MIXED) - 2  # tool_object and diff leave a text solve reply as it is


# --- structured output, cached and reasoning tokens ---------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": {"type": "object"}}}


@pytest.mark.parametrize("style", ["plain", "think", "reasoning_field", "markdown"])
async def test_json_schema_requests_get_the_topics_and_task_bundle_objects(catalog_root: Path, style: str) -> None:
    topics_request = propose_messages(catalog_root, count=3)
    write = write_messages(iris_card(catalog_root), "iris-clean01")
    async with teacher(style, defect_rate=0.0) as ask:
        _, reply = await ask(topics_request, "propose_topics", response_format=schema("topics"))
        assert json.loads(reply.text) == {"topics": topics_of(canonical("propose_topics", topics_request))}
        _, reply = await ask(write, "write_task", response_format=schema("task_bundle"))
        bundle = write_bundle(iris_card(catalog_root), task_id="iris-clean01")
        value = json.loads(reply.text)
        assert value["files"] == bundle.files
        assert {k: value[k] for k in ("name", "metric", "direction", "training_timeout")} == \
            {"name": bundle.name, "metric": bundle.metric, "direction": bundle.direction,
             "training_timeout": bundle.training_timeout}
        _, reply = await ask(write, "write_task", response_format={"type": "json_object"})
        assert json.loads(reply.text)["files"] == bundle.files
        # a schema of another name is not one the teacher knows: the text reply
        _, reply = await ask(topics_request, "propose_topics", response_format=schema("something_else"))
        assert topics_of(reply.text) == topics_of(canonical("propose_topics", topics_request))
        if style != "plain" and style != "markdown":
            assert DRAFT_MARK in reply.reasoning


async def test_cached_tokens_are_the_longest_prefix_seen_and_reasoning_tokens_the_thinking() -> None:
    async with TeacherServer(config=TeacherConfig(style="think")) as server:
        llm = LLM(Endpoint(base_url=server.base_url, api_key="offline", model=TEACHER_MODEL), "test")
        try:
            messages = instance(FACTS)
            first = await llm.complete(messages, purpose="solve")
            assert first.cached_tokens == 0 and first.reasoning_tokens > 0
            assert first.reasoning_tokens < first.completion_tokens and first.finish_reason == "stop"
            # the append-only next request: its prefix (the first request's messages) was seen
            messages += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "(no output)"}]
            second = await llm.complete(messages, purpose="solve")
            assert second.cached_tokens == conversation_tokens(instance(FACTS)) < second.prompt_tokens
            third = await llm.complete(messages, purpose="solve")  # the same again: all of it
            assert third.cached_tokens == third.prompt_tokens
            # a conversation that changed its first message shares nothing
            other = await llm.complete([{"role": "system", "content": "Another system prompt."}, *messages[1:]],
                                       purpose="solve")
            assert other.cached_tokens == 0
        finally:
            await llm.close()


# --- episodes in each style replay the plan -----------------------------------------------------------------


async def play_over_http(ask: Asker, seed: int, tools: bool) -> list[str]:
    """A solver loop in miniature: the command read from each reply, the cut-off re-asked, the reply's text
    (without thinking, as the solver records it) and calls sent back with the observation."""
    task = FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85})
    messages, commands = instance(FACTS), []
    extra = {"tools": [BASH_TOOL]} if tools else {}
    for _ in range(40):
        raw, reply = await ask(messages, "solve", seed=seed, **extra)
        if raw["choices"][0]["finish_reason"] == "length":
            retry = [*messages, {"role": "assistant", "content": reply.text},
                     {"role": "user", "content": "Your reply was cut off. Reply again in full."}]
            raw, reply = await ask(retry, "solve", seed=seed, **extra)
        command = command_of(reply)
        commands.append(command)
        observation = task.run(command)
        assistant: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            assistant["tool_calls"] = reply.tool_calls
            messages += [assistant, {"role": "tool", "tool_call_id": reply.tool_calls[0]["id"], "content": observation}]
        else:
            messages += [assistant, {"role": "user", "content": observation}]
        if command == "submit":
            return commands
    raise AssertionError(f"no submit: {commands}")


@pytest.mark.parametrize("style", [s for s in STYLES if s != "plain"])
async def test_an_episode_in_each_style_replays_the_plain_plan(style: str) -> None:
    async with teacher("plain") as plain, teacher(style) as styled:
        for tools in (False, True):
            expected = await play_over_http(plain, seed=3, tools=tools)
            assert await play_over_http(styled, seed=3, tools=tools) == expected
            assert DRAFT_COMMAND not in expected and expected[-1] == "submit"


def test_policy_messages_undo_the_styles_in_the_conversation() -> None:
    styled = [{"role": "user", "content": "go"},
              {"role": "assistant", "content": "<think>```bash\nrm -rf data\n```</think>\nTHOUGHT: x\n\n```console\n$ ls\n```",
               "reasoning_content": "r"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "a", "function": {"name": "bash", "arguments": json.dumps(json.dumps({"command": "ls"}))}},
                  {"id": "b", "function": {"name": "bash", "arguments": {"command": "pwd"}}}]}]
    plain = policy_messages(styled)
    assert plain[0] == styled[0]
    assert plain[1] == {"role": "assistant", "content": "THOUGHT: x\n\n```bash\nls\n```"}
    assert [c["function"]["arguments"] for c in plain[2]["tool_calls"]] == ['{"command": "ls"}', '{"command": "pwd"}']
