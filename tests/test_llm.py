"""The model path over real HTTP: the openai SDK (through agents.llm.LLM) against the offline teacher
server on a free port, with its injected faults; and LLMAgent.ask's format corrections against a tiny
scripted OpenAI-shaped server, publishing usage on a real bus."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from tenacity import RetryCallState

import agents.llm as llm_mod
from agents.llm import LLM, Completion, Endpoint, ModelRefused, Models, Prices
from agents.llm_agent import LLMAgent
from agents.proposer import parse_topics
from agents.replies import ReplyError
from agents.runtime import AgentContext
from bus import Bus, Transient, subject_for
from domain.model_api import PURPOSE_HEADER, TEACHER_MODEL
from domain.payloads import Usage
from prompts import render
from teacher.server import Faults, TeacherServer
from tests.test_teacher import built_catalog, propose_messages

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="session")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_catalog(tmp_path_factory)


@pytest.fixture
def messages(catalog_root: Path) -> list[dict[str, str]]:
    return propose_messages(catalog_root, count=3)


@asynccontextmanager
async def teacher(**faults: Any) -> AsyncIterator[TeacherServer]:
    async with TeacherServer(faults=Faults(**faults)) as server:
        yield server


@asynccontextmanager
async def client(server_url: str, *, usage: list[Usage] | None = None, prices: Prices | None = None,
                 backoff_base_s: float = 0.5, **endpoint: Any) -> AsyncIterator[LLM]:
    async def on_usage(u: Usage) -> None:
        if usage is not None:
            usage.append(u)

    llm = LLM(Endpoint(server_url, "test-key", TEACHER_MODEL, **endpoint), "tester", prices=prices,
              on_usage=on_usage, backoff_base_s=backoff_base_s)
    try:
        yield llm
    finally:
        await llm.close()


# --- the teacher over HTTP --------------------------------------------------------------------------------


async def test_models_lists_the_rule_based_teacher() -> None:
    async with teacher() as srv, client(srv.base_url) as llm:
        models = [m async for m in llm.client.models.list()]
    assert [m.id for m in models] == [TEACHER_MODEL]
    assert "rule-based" in models[0].id and "not a model" in models[0].owned_by


async def test_propose_topics_round_trip_is_parseable_and_deterministic(catalog_root: Path) -> None:
    msgs = propose_messages(catalog_root, count=4)
    async with teacher() as srv, client(srv.base_url) as llm:
        first = await llm.complete(msgs, purpose="propose_topics")
        second = await llm.complete(msgs, purpose="propose_topics")
        counters = srv.teacher.counters
    topics = parse_topics(first.text)
    assert len(topics) == 4 and len({t.title for t in topics}) == 4
    assert second.text == first.text
    assert counters.by_purpose == {"propose_topics": 2} and counters.calls == 2
    assert first.retries == 0 and first.prompt_tokens > 0 and first.completion_tokens > 0


async def test_unknown_purpose_is_refused_without_retrying(messages: list[dict[str, str]]) -> None:
    async with teacher() as srv, client(srv.base_url, backoff_base_s=0.001) as llm:
        with pytest.raises(ModelRefused, match="400") as refused:
            await llm.complete(messages, purpose="write_poetry")
        assert srv.teacher.counters.calls == 1
    assert "no policy for purpose 'write_poetry'" in str(refused.value)


# --- faults -----------------------------------------------------------------------------------------------


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[BaseException | None, float]]:
    """Every backoff decision the client makes: (the error that caused it, the wait chosen)."""
    seen: list[tuple[BaseException | None, float]] = []
    real = llm_mod.backoff

    def recording(state: RetryCallState, base: float = 0.5, cap: float = 30.0) -> float:
        wait = real(state, base, cap)
        seen.append((state.outcome.exception() if state.outcome else None, wait))
        return wait

    monkeypatch.setattr(llm_mod, "backoff", recording)
    return seen


async def test_injected_errors_are_retried_honouring_retry_after(
    messages: list[dict[str, str]], waits: list[tuple[BaseException | None, float]]
) -> None:
    usage: list[Usage] = []
    done: list[tuple[Completion, list[tuple[BaseException | None, float]]]] = []
    async with teacher(error_rate=0.3, seed=1) as srv, \
            client(srv.base_url, usage=usage, backoff_base_s=0.001) as llm:
        for _ in range(30):
            before = len(waits)
            done.append((await llm.complete(messages, purpose="propose_topics"), waits[before:]))
        counters = srv.teacher.counters
    retries = sum(c.retries for c, _ in done)
    assert retries > 0 and retries == len(waits)
    assert counters.calls == 30 + retries and counters.errors == retries
    assert [u.retries for u in usage] == [c.retries for c, _ in done]
    assert {c.text for c, _ in done} == {done[0][0].text}

    statuses = [getattr(exc, "status_code", None) for exc, _ in waits]
    assert 429 in statuses and 500 in statuses
    for exc, wait in waits:
        if getattr(exc, "status_code", None) == 429:
            assert exc.response.headers["retry-after"] == "0.2"  # type: ignore[union-attr]
            assert wait == 0.2  # the server's hint, not the (tiny) exponential backoff
        else:
            assert wait <= 0.001 * 2 ** 6
    # the hinted waits were really slept: a call's latency covers them (a lower bound only)
    for completion, own in done:
        assert completion.latency_s >= sum(w for _, w in own) - 0.01


async def test_errors_past_the_retries_raise_transient(
    messages: list[dict[str, str]], waits: list[tuple[BaseException | None, float]]
) -> None:
    async with teacher(error_rate=1.0, seed=3) as srv, \
            client(srv.base_url, backoff_base_s=0.001, max_retries=3) as llm:
        with pytest.raises(Transient, match="after 4 tries") as failed:
            await llm.complete(messages, purpose="propose_topics")
        assert srv.teacher.counters.calls == 4 and srv.teacher.counters.errors == 4
    assert len(waits) >= 3  # tenacity also asks for a wait after the last try, then stops without sleeping
    assert failed.value.delay == 0.2  # the last answer (seed 3) is a 429: its hint becomes the nak delay


async def test_a_hang_times_out_into_transient_and_finishes_fast(messages: list[dict[str, str]]) -> None:
    started = time.monotonic()
    async with teacher(hang_rate=1.0, hang_s=30) as srv, \
            client(srv.base_url, backoff_base_s=0.001, timeout_s=0.5, max_retries=1) as llm:
        with pytest.raises(Transient, match="unreachable after 2 tries: APITimeoutError"):
            await llm.complete(messages, purpose="propose_topics")
        counters = srv.teacher.counters
        assert counters.calls == 2 and counters.hangs == 2
        # the server drops a hung request once its client has given up
        for _ in range(50):
            if counters.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        assert counters.in_flight == 0
    assert time.monotonic() - started < 10  # 2 x 0.5 s timeouts, not the 30 s hang


# --- concurrency ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [2, 6])
async def test_concurrency_per_endpoint_bounds_the_calls_in_flight(messages: list[dict[str, str]], limit: int) -> None:
    async with teacher(latency_s=0.2) as srv, client(srv.base_url, concurrency=limit) as llm:
        results = await asyncio.gather(*(llm.complete(messages, purpose="propose_topics") for _ in range(6)))
        counters = srv.teacher.counters
    assert len(results) == 6 and counters.calls == 6
    assert counters.max_in_flight == limit
    assert counters.in_flight == 0


# --- usage and cost ---------------------------------------------------------------------------------------


async def test_usage_reports_the_responses_tokens_and_the_price_tables_cost(messages: list[dict[str, str]]) -> None:
    usage: list[Usage] = []
    prices = Prices(table={TEACHER_MODEL: (3.0, 15.0)})
    async with teacher() as srv, client(srv.base_url, usage=usage, prices=prices) as llm:
        done = await llm.complete(messages, purpose="propose_topics")
        raw = await llm.client.chat.completions.create(model=TEACHER_MODEL, messages=messages,  # type: ignore[arg-type]
                                                       extra_headers={PURPOSE_HEADER: "propose_topics"})
    assert raw.usage is not None
    assert (done.prompt_tokens, done.completion_tokens) == (raw.usage.prompt_tokens, raw.usage.completion_tokens)
    assert done.cost_usd == pytest.approx((done.prompt_tokens * 3.0 + done.completion_tokens * 15.0) / 1e6)
    assert done.cost_usd > 0
    (u,) = usage
    assert (u.role, u.model, u.endpoint) == ("tester", TEACHER_MODEL, srv.base_url)
    assert (u.prompt_tokens, u.completion_tokens, u.cost_usd, u.retries) == (
        raw.usage.prompt_tokens, raw.usage.completion_tokens, done.cost_usd, 0)
    assert u.latency_s == done.latency_s > 0


@pytest.mark.parametrize(("model", "per_million"), [
    ("gpt-4o", 2.5 + 10.0),
    ("gpt-4o-mini", 0.15 + 0.6),
    ("gpt-4o-mini-2024-07-18", 0.15 + 0.6),  # a dated snapshot, as the API names it in its answers
    ("gpt-4o-2024-08-06", 2.5 + 10.0),
    ("gpt-5-mini-2025-08-07", 0.25 + 2.0),
    ("gpt-5-nano-2025-08-07", 0.05 + 0.4),
    ("gpt-5-2025-08-07", 1.25 + 10.0),
    (TEACHER_MODEL, 0.0),
])
def test_prices_use_the_longest_matching_model_name(model: str, per_million: float) -> None:
    assert Prices().cost(model, 1_000_000, 1_000_000) == pytest.approx(per_million)


# --- a scripted OpenAI-shaped server ----------------------------------------------------------------------


class ScriptedModel:
    """Answers chat completions from a script (a reply text, or an HTTP status to fail with); records the
    request bodies."""

    def __init__(self, script: list[str | int | dict[str, Any]], model: str = "gpt-4o-mini-2024-07-18") -> None:
        self.script, self.model = script, model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def chat(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(step, dict):  # a 200 with this body, whatever it is
            return web.json_response(step)
        if isinstance(step, int):
            return web.json_response({"error": {"message": f"scripted {step}", "type": "scripted", "param": None,
                                                "code": None}}, status=step)
        prompt = sum(len(str(m["content"])) for m in self.requests[-1]["messages"])
        return web.json_response({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": step}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(step), "total_tokens": prompt + len(step)},
        })

    async def __aenter__(self) -> ScriptedModel:
        app = web.Application()
        app.add_routes([web.post("/v1/chat/completions", self.chat)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner:
            await self.runner.cleanup()


async def test_request_timeout_and_conflict_are_retried_other_4xx_refused() -> None:
    async with ScriptedModel([408, 409, "fine"]) as srv, client(srv.url, backoff_base_s=0.001) as llm:
        done = await llm.complete([{"role": "user", "content": "hi"}], purpose="anything")
        assert (done.text, done.retries, len(srv.requests)) == ("fine", 2, 3)
    async with ScriptedModel([401, "fine"]) as srv, client(srv.url, backoff_base_s=0.001) as llm:
        with pytest.raises(ModelRefused, match="401"):
            await llm.complete([{"role": "user", "content": "hi"}], purpose="anything")
        assert len(srv.requests) == 1


async def test_the_request_carries_the_options_and_the_reply_is_read_from_its_json() -> None:
    tool_reply = {"id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o-2024-08-06",
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                      "role": "assistant", "content": None, "tool_calls": [
                          {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]}}],
                  "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}}
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
    async with ScriptedModel([tool_reply]) as srv, client(srv.url) as llm:
        done = await llm.complete([{"role": "user", "content": "hi"}], purpose="solve", seed=7, max_tokens=64,
                                  tools=tools)
    sent, headers = srv.requests[0], {k.lower(): v for k, v in srv.headers[0].items()}
    assert sent == {"model": TEACHER_MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": 7,
                    "max_tokens": 64, "tools": tools}
    assert headers["content-type"] == "application/json" and headers[PURPOSE_HEADER.lower()] == "solve"
    assert headers["authorization"] == "Bearer test-key"
    assert done.text == "" and done.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]
    assert (done.prompt_tokens, done.completion_tokens) == (1000, 10)
    assert done.cost_usd == pytest.approx((1000 * 2.5 + 10 * 10.0) / 1e6)  # priced by the model the reply names


async def test_credentials_in_the_base_url_are_sent_as_basic_auth_in_place_of_the_key() -> None:
    async with ScriptedModel(["fine"]) as srv:
        url = srv.url.replace("http://", "http://proxy%20user:p%40ss@")
        async with client(url) as llm:
            done = await llm.complete([{"role": "user", "content": "hi"}], purpose="anything")
    sent = {k.lower(): v for k, v in srv.headers[0].items()}
    assert done.text == "fine" and sent["authorization"] == "Basic " + base64.b64encode(b"proxy user:p@ss").decode()
    assert llm_mod.url_auth("http://h:1/v1") == ("http://h:1/v1", {})


@pytest.mark.parametrize("body", [{"object": "chat.completion", "choices": []}, {"choices": [{"message": None}]},
                                  {"error": "not an OpenAI endpoint"}])
async def test_a_200_that_is_not_a_completion_is_transient_with_the_reason(body: dict[str, Any]) -> None:
    async with ScriptedModel([body]) as srv, client(srv.url) as llm:
        with pytest.raises(llm_mod.MalformedReply, match="malformed completion: no choices") as exc:
            await llm.complete([{"role": "user", "content": "hi"}], purpose="anything")
    assert isinstance(exc.value, Transient) and len(srv.requests) == 1  # nak'ed and redelivered later


def test_the_client_sends_over_aiohttp() -> None:
    """openai[aiohttp] is a dependency: the SDK's aiohttp client, not its default pool (see bench_solver.py)."""
    assert isinstance(llm_mod.http_client(), openai.DefaultAioHttpClient)


# --- LLMAgent.ask: bounded format corrections -------------------------------------------------------------

GOOD_TOPICS = """Here you go.
```json
[{"title": "Classify species on iris", "description": "Predict the species.", "task_type": "tabular_classification",
  "candidate_datasets": [{"id": "iris", "source": "builtin", "input_columns": ["petal_length_cm"],
                          "label_column": "species"}]}]
```
"""
BAD_TOPICS = "Sure! Topic one: classify irises. Topic two: predict diabetes progression."


class Asker(LLMAgent):
    role = "asker"
    consumes = ()


def asker(bus: Bus, data_dir: Path, url: str) -> Asker:
    endpoint = Endpoint(url, "test-key", "gpt-4o-mini", max_retries=0)
    return Asker(AgentContext(bus=bus, data_dir=data_dir, models=Models(teacher=endpoint, solver=endpoint)))


@asynccontextmanager
async def asking(bus: Bus, data_dir: Path, url: str) -> AsyncIterator[Asker]:
    """An asker on the scripted server at `url`, stopped afterwards."""
    agent = asker(bus, data_dir, url)
    try:
        yield agent
    finally:
        await agent.stop()


def problem_of(parse: Callable[[str], Any], text: str) -> str:
    with pytest.raises(ReplyError) as exc:
        parse(text)
    return str(exc.value)


async def usage_events(bus: Bus) -> list[Usage]:
    """Every usage event in the stream (publish_usage waits for the ack: they are all there)."""
    stream = bus.settings.stream
    state = (await bus.js.stream_info(stream)).state
    raw = [await bus.js.get_msg(stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]
    return [(await bus.resolve(m.data)).payload for m in raw if m.subject == subject_for("usage")]  # type: ignore[misc]


async def test_ask_corrects_an_unparseable_reply_once(bus: Bus, tmp_path: Path) -> None:
    question = [{"role": "user", "content": "Propose one topic as a JSON array."}]
    async with ScriptedModel([BAD_TOPICS, GOOD_TOPICS]) as srv, asking(bus, tmp_path, srv.url) as agent:
        topics = await agent.ask(question, "propose_topics", parse_topics)
    assert [t.title for t in topics] == ["Classify species on iris"]
    assert len(srv.requests) == 2
    correction = render("format_correction", problem=problem_of(parse_topics, BAD_TOPICS))
    assert srv.requests[0]["messages"] == question
    assert srv.requests[1]["messages"] == [*question, {"role": "assistant", "content": BAD_TOPICS},
                                           {"role": "user", "content": correction}]
    assert "Your reply could not be used: expected a ```json block" in correction

    usage = await usage_events(bus)
    assert len(usage) == 2 and {u.role for u in usage} == {"asker"}
    assert {u.model for u in usage} == {"gpt-4o-mini-2024-07-18"}
    for u in usage:  # priced as gpt-4o-mini although the answer names a dated snapshot
        assert u.cost_usd > 0
        assert u.cost_usd == pytest.approx((u.prompt_tokens * 0.15 + u.completion_tokens * 0.6) / 1e6)


async def test_ask_gives_up_with_reply_error_after_the_corrections(bus: Bus, tmp_path: Path) -> None:
    question = [{"role": "user", "content": "Propose one topic as a JSON array."}]
    async with ScriptedModel([BAD_TOPICS]) as srv, asking(bus, tmp_path, srv.url) as agent:
        with pytest.raises(ReplyError, match=r"still after 2 format corrections"):
            await agent.ask(question, "propose_topics", parse_topics)
    assert len(srv.requests) == Asker.max_corrections + 1 == 3
    assert [len(r["messages"]) for r in srv.requests] == [1, 3, 5]
    assert len(await usage_events(bus)) == 3
