"""From topic to validated task, for real: NATS, the offline teacher over HTTP through the openai SDK,
the bwrap sandbox, the sink's SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.runtime import AgentRunner, Supervisor
from bus import Bus, EmbeddedNats, make_envelope
from bus.server import free_port
from domain.payloads import DatasetCandidate, TopicProposed, TopicRequested
from domain.tasks import TASK_TYPES
from gymforge import config
from gymforge.app import build_agent
from gymforge.commands.run_cmd import DOMAINS
from store.db import Store
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer
from tests.test_catalog import FakeHub, fake_hub  # noqa: F401 - the fake Hub API fixture
from tests.test_runtime import wait_until_count

FIRST_HALF = ("proposer", "verifier", "coder", "debugger")


def settings_for(server: EmbeddedNats, data_dir: Path, teacher_port: int, **extra: object) -> config.Settings:
    return config.load({"nats_url": server.url, "data_dir": data_dir, "teacher_port": teacher_port,
                        "attempts": 2, "llm_max_retries": 2, **extra}, environ={})


@pytest.fixture
async def teacher() -> AsyncIterator[TeacherServer]:
    async with TeacherServer(config=TeacherConfig(defect_rate=1.0)) as server:
        yield server


async def start_roles(bus: Bus, s: config.Settings, roles: tuple[str, ...]) -> tuple[Supervisor, asyncio.Task]:
    sup = Supervisor([AgentRunner(build_agent(r, bus, s)) for r in roles], grace_s=2)
    return sup, asyncio.create_task(sup.run())


async def rows(db: Path, sql: str) -> list[dict]:
    store = await Store.open(db, readonly=True)
    try:
        return await store.rows(sql)
    finally:
        await store.close()


async def test_seeds_for_each_domain_yield_validated_tasks_of_every_type(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, teacher: TeacherServer
) -> None:
    s = settings_for(nats_server, data_dir, teacher.port)
    sup, task = await start_roles(bus, s, FIRST_HALF)
    try:
        # five domains give five task types (time series: a series classification; healthcare: a count);
        # the two they leave out come as given topics
        requests = [TopicRequested(domain=domain, count=1) for domain in DOMAINS[:5]]
        requests += [
            TopicRequested(domain="time series", count=1, topic="Forecast the yearly sunspot number",
                           task_type="time_series_forecasting"),
            TopicRequested(domain="botany", count=1, topic="Classify iris species from flower measurements",
                           task_type="tabular_classification"),
        ]
        for request in requests:
            await bus.publish(make_envelope("topic.requested", request, producer="t"))
        await wait_until_count(sink, "SELECT COUNT(*) FROM tasks WHERE status IN ('validated','rejected')",
                               len(requests), timeout=360)
    finally:
        sup.request_stop()
        await task
    tasks = await rows(sink, "SELECT * FROM tasks")
    assert {t["status"] for t in tasks} == {"validated"}, [(t["task_id"], t["reason"]) for t in tasks]
    assert {t["task_type"] for t in tasks} == set(TASK_TYPES)
    # every first draft carried a planted defect: each task needed a debug round driven by its error
    assert all(t["revision"] >= 1 and t["rounds"] == t["revision"] + 1 for t in tasks)
    fixes = await rows(sink, "SELECT * FROM task_revisions WHERE revision > 0")
    assert len(fixes) >= len(tasks) and all("FIX:" in f["answers_error"] for f in fixes)
    for t in tasks:
        bundle = json.loads(t["bundle"])
        assert "{dataset_docs}" in bundle["description"] and "SUBMISSION FORMAT" in bundle["description"]
        assert bundle["direction"] in ("maximize", "minimize") and t["baseline_score"] is not None
    solves = await rows(sink, "SELECT COUNT(*) AS n FROM ledger WHERE type = 'solve.requested'")
    assert solves[0]["n"] == 2 * len(tasks)
    usage = await rows(sink, "SELECT role, COUNT(*) AS n FROM usage GROUP BY role")
    assert {u["role"] for u in usage} == {"proposer", "coder", "debugger"}


async def test_topics_without_a_usable_dataset_are_rejected_with_reasons(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, teacher: TeacherServer, fake_hub: FakeHub  # noqa: F811
) -> None:
    s = settings_for(nats_server, data_dir, teacher.port, hf_endpoint=fake_hub.base, hf_viewer_endpoint=fake_hub.base)
    sup, task = await start_roles(bus, s, ("verifier",))
    topics = {
        "nomatch": TopicProposed(title="Xyzzy quux frobnication of plugh"),
        "missing": TopicProposed(title="Reviews", task_type="text_classification",
                                 candidate_datasets=[DatasetCandidate(id="acme/nope", source="hub")]),
        "gated": TopicProposed(title="Gated reviews", task_type="text_classification",
                               candidate_datasets=[DatasetCandidate(id="acme/gated", source="hub")]),
        "badcol": TopicProposed(title="Iris", task_type="tabular_classification",
                                candidate_datasets=[DatasetCandidate(id="iris", input_columns=["petal_width"],
                                                                     label_column="colour")]),
        "unknown": TopicProposed(title="Iris", task_type="tabular_classification",
                                 candidate_datasets=[DatasetCandidate(id="no_such_builtin")]),
    }
    try:
        for t in topics.values():
            await bus.publish(make_envelope("topic.proposed", t, producer="t"))
        await wait_until_count(sink, "SELECT COUNT(*) FROM datasets", len(topics), timeout=60)
    finally:
        sup.request_stop()
        await task
    reasons = {r["title"]: r["reason"] for r in await rows(sink, "SELECT title, reason, status FROM topics")}
    assert all(r for r in reasons.values()), reasons
    assert "no dataset in the catalog matches" in reasons["Xyzzy quux frobnication of plugh"]
    assert "acme/nope" in reasons["Reviews"] and "not found" in reasons["Reviews"].lower()
    assert "gated" in reasons["Gated reviews"].lower()
    assert "colour" in reasons["Iris"] or "no_such_builtin" in reasons["Iris"]


async def test_endpoint_down_the_event_waits_and_nothing_is_lost(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path
) -> None:
    port = free_port()
    s = settings_for(nats_server, data_dir, port, llm_max_retries=1, max_deliver=50)
    sup, task = await start_roles(bus, s, ("proposer",))
    try:
        req = make_envelope("topic.requested", TopicRequested(domain="tabular data", count=2), producer="t")
        await bus.publish(req)
        # the endpoint is down: calls fail, the message is nak'ed and redelivered, never dropped
        await wait_redelivered(bus, "proposer", timeout=60)
        assert (await rows(sink, "SELECT COUNT(*) AS n FROM topics"))[0]["n"] == 0
        async with TeacherServer(port=port):
            await wait_until_count(sink, "SELECT COUNT(*) FROM topics", 2, timeout=60)
    finally:
        sup.request_stop()
        await task
    letters = await rows(sink, "SELECT COUNT(*) AS n FROM dead_letters")
    assert letters[0]["n"] == 0


async def wait_redelivered(bus: Bus, durable: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            info = await bus.js.consumer_info("GYMFORGE", durable)
            if info.num_redelivered >= 1:
                return
        except Exception:  # the consumer is created once the agent has started
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{durable}: no redelivery within {timeout}s")
