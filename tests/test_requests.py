"""The request side over real HTTP: per-role request options from the configuration reach the request body,
structured output (json_schema) is asked for and falls back to text when the endpoint refuses it, costs
are priced with the cached-input price, usage keeps cached and reasoning tokens through the store to
`status`, and the solver's conversation is append-only (so provider prefix caches hit).

The endpoint is the real openai SDK (agents.llm.LLM) against `StandIn`: a tiny aiohttp server on a free
port that speaks the chat completions shape. It is a stand-in for a provider, not a model: each test
gives it the rule it answers by."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from agents import schemas, structured
from agents.coder import TaskMeta
from agents.llm import DEFAULT_PRICES, LLM, Endpoint, ModelRefused, Models, Prices
from agents.llm_agent import LLMAgent
from agents.model_options import StructuredModelSettings
from agents.proposer import parse_topics
from agents.runtime import AgentContext
from agents.solver.agent import LLMModel
from agents.solver.loop import Episode, EpisodeLimits, NoSubmission, Output, Scored
from agents.solver.record import Recorder
from bus import Bus, EmbeddedNats, make_envelope
from domain.payloads import TopicProposed, Usage
from gymforge import config
from gymforge.app import build_agent, models
from gymforge.commands.bus_cmds import gather_status, status_text
from gymforge.errors import UserError
from store import queries
from store.db import Store
from store.writes import entity_rows
from teacher.probe import probe_reply
from tests.test_llm import ScriptedModel

pytestmark = pytest.mark.timeout(120)

Rule = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def completion(content: str | None, *, model: str = "gpt-5-2025-08-07", usage: dict[str, Any] | None = None,
               **message: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": usage or {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


def refusal(message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


class StandIn(ScriptedModel):
    """A stand-in OpenAI-shaped endpoint: answers POST /v1/chat/completions by `rule(body)` -> (status, JSON)
    and records every request body (test_llm's scripted server, answering by a rule)."""

    def __init__(self, rule: Rule) -> None:
        super().__init__([])
        self.rule = rule

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        status, answer = self.rule(body)
        return web.json_response(answer, status=status)


@asynccontextmanager
async def stand_in(rule: Rule) -> AsyncIterator[StandIn]:
    async with StandIn(rule) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide memory of endpoints that refused structured output starts empty in each test."""
    monkeypatch.setattr(structured, "REFUSED", set())


def settings_from(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> config.Settings:
    path = tmp_path / "gymforge.toml"
    path.write_text(toml)
    return config.load({"data_dir": tmp_path / "data"}, config_file=path, environ=env or {})


HI = [{"role": "user", "content": "hi"}]


# --- per-role request options ------------------------------------------------------------------------------


async def test_each_roles_options_reach_its_request_body_and_unset_ones_are_not_sent(bus: Bus, tmp_path: Path) -> None:
    async with stand_in(lambda body: (200, completion("fine"))) as srv:
        s = settings_from(tmp_path, f"""
openai_base_url = "{srv.url}"
teacher_model = "gpt-4.1"
coder_model = "gpt-5-mini"
[coder]
reasoning_effort = "high"
max_completion_tokens = 900
extra_body = {{chat_template_kwargs = {{enable_thinking = false}}}}
""", {"GYMFORGE_SOLVER_MODEL": "qwen3-8b", "GYMFORGE_SOLVER_TEMPERATURE": "0.2",
      "GYMFORGE_SOLVER_EXTRA_BODY": '{"top_k": 20}'})
        sent = {}
        for role in ("coder", "solver", "debugger", "proposer"):
            agent = build_agent(role, bus, s)
            try:
                await agent.llm.complete(HI, purpose="anything")
            finally:
                await agent.stop()
            sent[role] = srv.requests[-1]
    assert sent["coder"] == {"model": "gpt-5-mini", "messages": HI, "reasoning_effort": "high",
                             "max_completion_tokens": 900, "chat_template_kwargs": {"enable_thinking": False}}
    assert sent["solver"] == {"model": "qwen3-8b", "messages": HI, "temperature": 0.2, "top_k": 20}
    assert sent["debugger"] == sent["proposer"] == {"model": "gpt-4.1", "messages": HI}  # the teacher's model


@pytest.mark.parametrize(("env", "message"), [
    ({"GYMFORGE_CODER_EXTRA_BODY": "[1, 2]"}, r"bad setting coder_extra_body \(GYMFORGE_CODER_EXTRA_BODY\) "
                                              "from environment: Value error, must be a JSON object"),
    ({"GYMFORGE_SOLVER_EXTRA_BODY": "{oops"}, "bad setting solver_extra_body .*not JSON"),
    ({"GYMFORGE_PROPOSER_REASONING_EFFORT": "extreme"}, "bad setting proposer_reasoning_effort .*'minimal'"),
    ({"GYMFORGE_DEBUGGER_TEMPERATURE": "3"}, "bad setting debugger_temperature .*less than or equal to 2"),
    ({"GYMFORGE_CODER_STRUCTURED_OUTPUT": "always"}, "bad setting coder_structured_output .*'auto' or 'off'"),
    ({"GYMFORGE_PRICES": "gpt-5: cheap"}, "bad setting prices .*not JSON"),
])
def test_bad_request_options_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message) as e:
        config.load(environ=env)
    assert "\n" not in str(e.value)


# --- structured output ---------------------------------------------------------------------------------------

TOPICS_TEXT = """```json
[{"title": "Classify species on iris", "description": "Predict the species.", "task_type": "tabular_classification",
  "candidate_datasets": [{"id": "iris", "source": "builtin", "input_columns": ["petal_length_cm"],
                          "label_column": "species"}]}]
```
"""


class Asker(LLMAgent):
    role = "asker"
    consumes = ()
    Settings = StructuredModelSettings


def asker(bus: Bus, tmp_path: Path, url: str, mode: str = "auto") -> Asker:
    endpoint = Endpoint(url, "test-key", "gpt-4o-mini", max_retries=0)
    ctx = AgentContext(bus=bus, data_dir=tmp_path, models=Models(teacher=endpoint, solver=endpoint))
    return Asker(ctx, StructuredModelSettings(structured_output=mode))  # type: ignore[arg-type]


def refuses_schemas(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if "response_format" in body:
        return refusal("Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.")
    return 200, completion(TOPICS_TEXT)


async def test_topics_are_asked_with_their_schema_and_a_refusal_falls_back_to_text_once(bus: Bus, tmp_path: Path) -> None:
    async with stand_in(refuses_schemas) as srv:
        agent = asker(bus, tmp_path, srv.url)
        try:
            with structlog.testing.capture_logs() as logs:
                first = await agent.ask(HI, "propose_topics", parse_topics, schema="topics")
                second = await agent.ask(HI, "propose_topics", parse_topics, schema="topics")
        finally:
            await agent.stop()
    assert [t.title for t in first] == [t.title for t in second] == ["Classify species on iris"]
    asked = srv.requests[0]["response_format"]
    assert asked == {"type": "json_schema", "json_schema": {"name": "topics", "schema": schemas.TOPICS, "strict": True}}
    # refused once: asked again in text at once, and in text from then on (remembered for endpoint + model)
    assert ["response_format" in r for r in srv.requests] == [True, False, False]
    assert srv.requests[1]["messages"] == srv.requests[0]["messages"] == HI
    refusals = [e for e in logs if e["event"].startswith("structured output refused")]
    assert len(refusals) == 1 and refusals[0]["model"] == "gpt-4o-mini" and refusals[0]["log_level"] == "warning"


async def test_an_accepted_schema_is_kept_off_is_text_and_other_refusals_are_no_fallback(bus: Bus, tmp_path: Path) -> None:
    async with stand_in(lambda body: (200, completion(TOPICS_TEXT))) as srv:
        for mode in ("auto", "auto", "off"):
            agent = asker(bus, tmp_path, srv.url, mode)
            try:
                await agent.ask(HI, "propose_topics", parse_topics, schema="topics")
                await agent.ask(HI, "plain", lambda text: text)  # no schema: never structured
            finally:
                await agent.stop()
    assert [r.get("response_format", {}).get("json_schema", {}).get("name") for r in srv.requests] == [
        "topics", None, "topics", None, None, None]

    async with stand_in(lambda body: refusal("Unsupported parameter: 'temperature'")) as srv:
        agent = asker(bus, tmp_path, srv.url)
        try:
            with pytest.raises(ModelRefused, match="temperature"):
                await agent.ask(HI, "propose_topics", parse_topics, schema="topics")
        finally:
            await agent.stop()
    assert len(srv.requests) == 1 and not structured.REFUSED


def _strict_problems(schema: dict[str, Any], where: str = "$") -> list[str]:
    """What OpenAI's strict mode would refuse: an object not requiring every property or allowing others."""
    problems = []
    if schema.get("type") == "object":
        if schema.get("required") != list(schema["properties"]) or schema.get("additionalProperties") is not False:
            problems.append(where)
        for k, sub in schema["properties"].items():
            problems += _strict_problems(sub, f"{where}.{k}")
    if "items" in schema:
        problems += _strict_problems(schema["items"], f"{where}[]")
    return problems


def test_the_schemas_are_strict_and_describe_what_the_roles_read() -> None:
    assert _strict_problems(schemas.TOPICS) == [] and _strict_problems(schemas.TASK_BUNDLE) == []
    topics = json.loads(probe_reply(HI, schemas.response_format("topics")))
    bundle = json.loads(probe_reply(HI, schemas.response_format("task_bundle")))
    assert schemas.violation(topics, schemas.TOPICS) is None
    assert schemas.violation(bundle, schemas.TASK_BUNDLE) is None
    for item in topics["topics"]:  # what conforms is a valid proposal and valid task metadata
        TopicProposed.model_validate(item)
    TaskMeta.model_validate(bundle)
    assert set(bundle["files"]) == set(schemas.BUNDLE_FILES)

    broken = [({**bundle, "direction": "up"}, "$.direction: 'up' is not one of"),
              ({**bundle, "training_timeout": True}, "$.training_timeout: expected integer, got bool"),
              ({**bundle, "training_timeout": "60"}, "$.training_timeout: expected integer, got str"),
              ({k: v for k, v in bundle.items() if k != "metric"}, "$: missing ['metric']"),
              ({**bundle, "files": {**bundle["files"], "extra.py": ""}}, "$.files: unexpected ['extra.py']"),
              ({"topics": [{**topics["topics"][0], "task_type": None, "candidate_datasets": [{}]}]},
               "$.topics[0].candidate_datasets[0]: missing")]
    for value, problem in broken:
        found = schemas.violation(value, schemas.SCHEMAS["task_bundle" if "files" in value or "name" in value
                                                          else "topics"])
        assert found is not None and found.startswith(problem), (found, problem)


# --- costs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "cached_per_million"), [
    ("gpt-5-2025-08-07", 0.125), ("gpt-5-mini", 0.025), ("gpt-5-nano", 0.005),  # a tenth of the input price
    ("gpt-4.1", 0.5), ("gpt-4.1-mini-2025-04-14", 0.1),  # a quarter
    ("gpt-4o-2024-08-06", 1.25), ("gpt-4o-mini", 0.075),  # a half
    ("o4-mini", 0.275),  # a quarter
])
def test_cached_input_is_priced_at_the_providers_discount(model: str, cached_per_million: float) -> None:
    p = Prices()
    assert p.per_million(model)[2] == pytest.approx(cached_per_million)
    inp, out, cached = p.per_million(model)
    # a million prompt tokens, 600k of them cached, and 1k completion tokens
    assert p.cost(model, 1_000_000, 1000, cached_tokens=600_000) == pytest.approx(
        (400_000 * inp + 600_000 * cached + 1000 * out) / 1e6)
    assert p.cost(model, 1_000_000, 0, cached_tokens=600_000) < p.cost(model, 1_000_000, 0)


def test_the_price_table_from_toml_is_merged_over_the_defaults(tmp_path: Path) -> None:
    s = settings_from(tmp_path, '[prices]\n"my-vllm-model" = [0.5, 1.5, 0.05]\n"gpt-5" = [2.0, 20.0]\n'
                                '"local-model" = [1.0, 1.0]\n')
    table = models(s).prices
    assert table.per_million("my-vllm-model") == (0.5, 1.5, 0.05)
    assert table.per_million("gpt-5-2025-08-07") == pytest.approx((2.0, 20.0, 0.2))  # gpt-5's discount kept
    assert table.per_million("local-model") == (1.0, 1.0, 1.0)  # no known discount: cached at the input price
    assert table.per_million("gpt-4o") == DEFAULT_PRICES["gpt-4o"]  # untouched default
    env = config.load(environ={"GYMFORGE_PRICES": '{"my-model": [1, 2, 0.1]}'})
    assert models(env).prices.per_million("my-model") == (1.0, 2.0, 0.1)


CACHED_USAGE = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
                "prompt_tokens_details": {"cached_tokens": 800},
                "completion_tokens_details": {"reasoning_tokens": 30}}


async def test_usage_carries_cached_and_reasoning_tokens_and_the_cost_bills_the_cache() -> None:
    seen: list[Usage] = []

    async def on_usage(u: Usage) -> None:
        seen.append(u)

    async with stand_in(lambda body: (200, completion("fine", usage=CACHED_USAGE))) as srv:
        llm = LLM(Endpoint(srv.url, "k", "gpt-5"), "coder", on_usage=on_usage)
        try:
            done = await llm.complete(HI, purpose="anything")
        finally:
            await llm.close()
    expected = (200 * 1.25 + 800 * 0.125 + 50 * 10.0) / 1e6
    assert done.cost_usd == pytest.approx(expected) and (done.cached_tokens, done.reasoning_tokens) == (800, 30)
    (u,) = seen
    assert (u.model, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.reasoning_tokens) == (
        "gpt-5-2025-08-07", 1000, 800, 50, 30)
    assert u.cost_usd == pytest.approx(expected) and u.cost_usd < Prices().cost("gpt-5", 1000, 50)


# --- the store and status --------------------------------------------------------------------------------------

OLD_USAGE = """CREATE TABLE usage (id TEXT PRIMARY KEY, trace_id TEXT, role TEXT, model TEXT, prompt_tokens INTEGER,
  completion_tokens INTEGER, cost_usd REAL, latency_s REAL, retries INTEGER, time TEXT NOT NULL);
INSERT INTO usage VALUES ('old', 't', 'coder', 'gpt-5', 1000, 10, 0.001, 1.0, 0, '2026-01-01T00:00:00');"""


def usage_rows(prompt: int, cached: int, reasoning: int = 0, role: str = "solver") -> list[Any]:
    """The sink's statements for one usage event."""
    u = Usage(role=role, model="gpt-5", prompt_tokens=prompt, completion_tokens=10, cached_tokens=cached,
              reasoning_tokens=reasoning, cost_usd=0.001)
    return entity_rows(make_envelope("usage", u, producer=role, key=f"{prompt}-{cached}"), u)


async def test_an_existing_store_gets_the_usage_columns_and_totals_show_the_cached_share(tmp_path: Path) -> None:
    db = tmp_path / "gymforge.db"
    with sqlite3.connect(db) as old:  # a store from before cached tokens were recorded
        old.executescript(OLD_USAGE)
    ro = await Store.open(db, readonly=True)  # `status` before the sink has migrated it
    try:
        assert (await queries.usage_totals(ro))["total"]["cached_tokens"] == 0
    finally:
        await ro.close()
    store = await Store.open(db)  # the sink opens it: the columns are added
    try:
        assert {"cached_tokens", "reasoning_tokens"} <= await store.columns("usage")
        for rows in (usage_rows(1000, 900, 40), usage_rows(2000, 1100)):
            await store.write(rows)
        totals = await queries.usage_totals(store)
    finally:
        await store.close()
    t = totals["total"]
    assert (t["calls"], t["prompt_tokens"], t["cached_tokens"], t["reasoning_tokens"]) == (3, 4000, 2000, 40)
    assert t["cached_share"] == 0.5
    by_role = {r["role"]: r for r in totals["by_role"]}
    assert by_role["solver"]["cached_share"] == round(2000 / 3000, 4) and by_role["coder"]["cached_share"] == 0.0


async def test_status_shows_the_cached_share_of_prompt_tokens(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    s = config.load({"data_dir": tmp_path / "data", "nats_url": nats_server.url}, environ={})
    store = await Store.open(s.db_path)
    try:
        for rows in (usage_rows(1000, 250), usage_rows(3000, 750)):
            await store.write(rows)
    finally:
        await store.close()
    status = await gather_status(s)
    usage = status["store"]["usage"]
    assert (usage["prompt_tokens"], usage["cached_tokens"], usage["cached_share"]) == (4000, 1000, 0.25)
    assert "tokens (25% of prompt tokens cached)" in status_text(status, s, color=False)
    assert json.loads(json.dumps(status, default=str))["store"]["usage"]["cached_share"] == 0.25


# --- the solver's conversation is append-only ----------------------------------------------------------------


class LocalShell:
    """An Environment for the episode loop: commands run by /bin/sh in a directory; a submission is scored
    as 1.0 when it exists (this test is about the requests, not the task)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def timeout_for(self, command: str) -> float:
        return 10.0

    async def execute(self, command: str, timeout: float) -> Output:
        import asyncio

        started = time.monotonic()
        proc = await asyncio.create_subprocess_shell(command, cwd=self.root, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return Output(out.decode(), err.decode(), proc.returncode or 0, time.monotonic() - started)

    async def score(self) -> Scored:
        if not (self.root / "submission.csv").exists():
            raise NoSubmission("there is no submission.csv")
        return Scored({"accuracy": 1.0}, 1.0)


def scripted_solver(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Replies by the number of assistant turns so far; the second reply holds two commands (a correction)."""
    turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
    replies = ["THOUGHT: look.\n\n```bash\nls\n```", "THOUGHT: two.\n\n```bash\nls\n```\n\n```bash\npwd\n```",
               "THOUGHT: write it.\n\n```bash\necho id,label > submission.csv\n```", "THOUGHT: check.\n\n```bash\nvalidate\n```",
               "THOUGHT: done.\n\n```bash\nsubmit\n```"]
    corrected = any("could not be used" in str(m.get("content")) or "holds 2 commands" in str(m.get("content"))
                    for m in body["messages"] if m["role"] == "user")
    prompt = sum(len(str(m.get("content"))) for m in body["messages"])
    return 200, completion(replies[min(turn + (1 if corrected else 0), len(replies) - 1)],
                           usage={"prompt_tokens": prompt, "completion_tokens": 20, "total_tokens": prompt + 20})


async def test_each_solver_request_begins_with_the_previous_one(tmp_path: Path) -> None:
    async with stand_in(scripted_solver) as srv:
        llm = LLM(Endpoint(srv.url, "k", "gpt-5", max_retries=0), "solver")
        rec = Recorder("SYSTEM PROMPT", "INSTANCE PROMPT", {"task_id": "t", "attempt": 0, "metric": "accuracy",
                       "direction": "maximize", "baseline_score": 0.5, "model": "gpt-5"}, {}, "local")
        try:
            await Episode(LLMModel(llm, 0, "thought_action"), LocalShell(tmp_path), EpisodeLimits(max_steps=10),
                          rec, "thought_action", {"accuracy": 0.5}).run()
        finally:
            await llm.close()
    sent = [r["messages"] for r in srv.requests]
    corrections = [i for i, m in enumerate(sent) if m[-1]["role"] == "user" and "2 commands" in m[-1]["content"]]
    assert rec.info.exit_status == "submitted" and len(sent) == 6 and corrections == [2]
    for i in range(1, len(sent)):
        # a correction re-ask is dropped from the conversation after it: the next request continues the one
        # it corrected, so the prefix a provider cached for that one still holds
        previous = sent[i - 1] if i - 1 not in corrections else sent[i - 1][:-2]
        assert sent[i][:len(previous)] == previous, f"request {i} rewrites the conversation before it"
        assert len(sent[i]) > len(previous)
