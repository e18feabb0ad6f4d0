"""The dashboard: a store filled by the real sink from realistic events on a real nats-server, the real
aiohttp app over HTTP (every /api/ endpoint, the live event stream), and the pages in real headless
Chromium (Debian's `chromium`, driven by playwright): no console errors, events appear live, a
trajectory renders step by step, and model-written markup stays text."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

import prompts
from agents.budget import Limit, set_budget
from agents.runtime import AgentContext, AgentRunner, Supervisor
from agents.sink import SinkAgent
from bus import Bus, EmbeddedNats, Envelope, make_envelope, publish_dead_letter
from domain.payloads import (
    DatasetCandidate,
    DatasetRejected,
    DatasetVerified,
    SolveRequested,
    TaskDrafted,
    TaskGraded,
    TaskRejected,
    TaskValidated,
    TopicProposed,
    TopicRequested,
    TrajectoryAccepted,
    TrajectoryCompleted,
    TrajectoryRejected,
    Usage,
)
from domain.tasks import DataRef, Payload, TaskBundle
from domain.tokens import conversation_tokens
from gymforge import config
from gymforge.web.app import WebServer
from tests.helpers.cli import ROOT
from tests.test_runtime import wait_until_count

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
BUGGY = "import numpy as np\nprint(pd.read_csv('data/train.csv'))\n"
FIXED = "import pandas as pd\nprint(pd.read_csv('data/train.csv'))\n"
ERROR = "Traceback (most recent call last):\n  File \"baseline.py\", line 2\nNameError: name 'pd' is not defined"


# --- realistic events --------------------------------------------------------------------------


def bundle(task_id: str, baseline_py: str) -> TaskBundle:
    return TaskBundle(task_id=task_id, name=task_id.replace("-", " "), task_type="tabular_classification",
                      description="Predict the species.\n{dataset_docs}\nSUBMISSION FORMAT: id,species",
                      dataset_name="penguins", metric="accuracy", direction="maximize",
                      files={"baseline.py": baseline_py, "evaluate.py": "import json\nprint(json.dumps({}))\n",
                             "prepare.py": "print('prepare')\n"},
                      data=DataRef(key="a" * 16, splits={"train": "train.parquet"}))


def validate_obs(score: float) -> str:
    return prompts.render("solver_validate", error=None, baseline={"accuracy": 0.81}, metrics={"accuracy": score})


def trajectory(task_id: str, attempt: int, steps: list[tuple[str, str, str, float | None]], exit_status: str,
               score: float | None) -> dict[str, Any]:
    """The contract's SWE-agent .traj shape, as the solver records it."""
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an ML research agent.", "message_type": "system_prompt",
         "agent": "solver"},
        {"role": "user", "content": f"Task {task_id}: beat the baseline.", "message_type": "observation",
         "agent": "solver"},
    ]
    recorded = []
    for i, (thought, action, obs, sc) in enumerate(steps):
        reply = f"THOUGHT: {thought}\n\n```bash\n{action}\n```\n"
        recorded.append({"response": reply, "thought": thought, "action": action, "observation": obs,
                         "execution_time": 0.5 + i, "state": {"step": i, "score": sc},
                         "query": history[-1:], "extra_info": {"format_corrections": [], "tool_call_id": None}})
        history += [{"role": "assistant", "content": reply, "message_type": "action", "agent": "solver",
                     "thought": thought, "action": action},
                    {"role": "user", "content": obs, "message_type": "observation", "agent": "solver"}]
    scores = [s[3] for s in steps if s[3] is not None]
    return {"environment": "gymforge:bwrap", "trajectory": recorded, "history": history,
            "info": {"exit_status": exit_status, "exit_detail": "", "submission": "submission.csv" if score else None,
                     "score": score, "metrics": {"accuracy": score} if score else None, "baseline_score": 0.81,
                     "metric": "accuracy", "direction": "maximize", "validate_scores": scores,
                     "context_tokens": conversation_tokens(history),
                     "model_stats": {"instance_cost": 0.0123, "tokens_sent": 5000, "tokens_received": 700,
                                     "api_calls": len(steps)},
                     "task_id": task_id, "attempt": attempt, "model": "offline-teacher-rule-based"},
            "replay_config": {"action_format": "thought_action", "seed": attempt, "limits": {}, "model": "teacher"}}


GOOD_STEPS = [
    ("Look at the workspace first.", "ls -la && head -3 data/train.csv", "baseline.py\nevaluate.py\ndata", None),
    ("Run the baseline.", "python baseline.py", "(no output)", None),
    ("Validate the baseline's submission.", "validate", validate_obs(0.84), 0.84),
    ("More trees.", "sed -i 's/n_estimators=50/n_estimators=300/' baseline.py && python baseline.py",
     "(no output)", None),
    ("Check again.", "validate", validate_obs(0.9), 0.9),
    ("Better than the baseline: submit.", "submit", validate_obs(0.9), 0.9),
]
EVIL_STEPS = [
    (f"I will print {XSS} and see.", f"echo '{XSS}'", f"{XSS}\n</pre><b>bold</b>", None),
    ("Out of budget soon.", "validate", validate_obs(0.7), 0.7),
]


@dataclass
class Filled:
    server: EmbeddedNats
    bus: Bus
    db: Path
    data_dir: Path
    task_id: str
    rejected_task: str
    good: Envelope  # trajectory.completed, accepted
    evil: Envelope  # trajectory.completed with markup in it, rejected
    tokens: int
    cost: float
    events: int


async def fill(bus: Bus, db: Path) -> dict[str, Any]:
    published: list[Envelope] = []

    async def pub(event_type: str, payload: Payload, producer: str, parent: Envelope | None = None,
                  key: str | int = 0) -> Envelope:
        env = make_envelope(event_type, payload, producer=producer, parent=parent, key=key)
        await bus.publish(env)
        published.append(env)
        return env

    seed = await pub("topic.requested", TopicRequested(domain="tabular data", count=2), "cli")
    topic = TopicProposed(title="Penguin species from bill measurements", domain="tabular data",
                          task_type="tabular_classification",
                          candidate_datasets=[DatasetCandidate(id="penguins", label_column="species")])
    t1 = await pub("topic.proposed", topic, "proposer", seed, 0)
    t2 = await pub("topic.proposed", TopicProposed(title="Protein folding from images"), "proposer", seed, 1)
    ds = await pub("dataset.verified", DatasetVerified(
        topic=topic, dataset_id="penguins", source="builtin", task_type="tabular_classification",
        features={"bill_length_mm": "float64", "species": "string"}, input_columns=["bill_length_mm"],
        label_column="species", split_sizes={"train": 266, "test": 67}, data=DataRef(key="a" * 16, splits={})),
        "verifier", t1)
    await pub("dataset.rejected", DatasetRejected(topic=TopicProposed(title="Protein folding from images"),
                                                  reasons=["no such dataset in the catalog"]), "verifier", t2)
    task_id, bad_id = "penguin-species-4f2a", "penguin-sex-77aa"
    d0 = await pub("task.drafted", TaskDrafted(bundle=bundle(task_id, BUGGY), revision=0), "coder", ds)
    d1 = await pub("task.drafted", TaskDrafted(bundle=bundle(task_id, FIXED), revision=1, answers_error=ERROR),
                   "debugger", d0)
    ok = await pub("task.validated", TaskValidated(bundle=bundle(task_id, FIXED), revision=1, baseline_score=0.81,
                                                   baseline_metrics={"accuracy": 0.81}, runtime_s=2.5, rounds=2),
                   "debugger", d1)
    b0 = await pub("task.drafted", TaskDrafted(bundle=bundle(bad_id, BUGGY), revision=0), "coder", ds, 1)
    await pub("task.rejected", TaskRejected(task_id=bad_id, revision=0, rounds=1, reason="baseline failed",
                                            last_error="SyntaxError: invalid syntax"), "debugger", b0)
    solves = [await pub("solve.requested", SolveRequested(bundle=bundle(task_id, FIXED), attempt=a, attempts_total=2,
                                                          baseline_score=0.81), "debugger", ok, a) for a in (0, 1)]
    good_traj = trajectory(task_id, 0, GOOD_STEPS, "submitted", 0.9)
    evil_traj = trajectory(task_id, 1, EVIL_STEPS, "exit_cost", None)
    good = await pub("trajectory.completed", TrajectoryCompleted(
        task_id=task_id, attempt=0, attempts_total=2, exit_status="submitted", submitted=True, score=0.9,
        baseline_score=0.81, metric="accuracy", direction="maximize", validate_scores=[0.84, 0.9, 0.9],
        tokens=conversation_tokens(good_traj["history"]), steps=len(GOOD_STEPS), trajectory=good_traj),
        "solver", solves[0])
    evil = await pub("trajectory.completed", TrajectoryCompleted(
        task_id=task_id, attempt=1, attempts_total=2, exit_status="exit_cost", submitted=False, score=None,
        baseline_score=0.81, metric="accuracy", direction="maximize", validate_scores=[0.7],
        tokens=conversation_tokens(evil_traj["history"]), steps=len(EVIL_STEPS), trajectory=evil_traj),
        "solver", solves[1])
    await pub("trajectory.accepted", TrajectoryAccepted(task_id=task_id, attempt=0, trajectory_event_id=good.id,
                                                        score=0.9, gain=0.09, tokens=900), "filter", good)
    await pub("trajectory.rejected", TrajectoryRejected(task_id=task_id, attempt=1, trajectory_event_id=evil.id,
                                                        reasons=["no valid submission"]), "filter", evil)
    await pub("task.graded", TaskGraded(task_id=task_id, attempts=2, accepted=1, solve_rate=0.5, best_score=0.9,
                                        baseline_score=0.81, gain=0.09), "filter", good)
    usage = [("proposer", 1200, 300, 0.004), ("coder", 5000, 2500, 0.031), ("solver", 8000, 600, 0.016)]
    for i, (role, pt, ct, usd) in enumerate(usage):
        await pub("usage", Usage(role=role, model="gpt-5-mini", prompt_tokens=pt, completion_tokens=ct,
                                 cost_usd=usd, latency_s=1.5), role, ok, f"u{i}")
    dead = await publish_dead_letter(bus, "solver", "gf.solve.requested", b"{not json", None,
                                     "undecodable envelope: invalid JSON", 1, 4242)
    published.append(dead)
    await wait_until_count(db, "SELECT COUNT(*) FROM ledger", len(published), timeout=30)
    await wait_until_count(db, "SELECT COUNT(*) FROM trajectories WHERE traj IS NOT NULL AND status != 'completed'",
                           2, timeout=30)
    return {"task_id": task_id, "rejected_task": bad_id, "good": good, "evil": evil, "events": len(published),
            "tokens": sum(u[1] + u[2] for u in usage), "cost": sum(u[3] for u in usage)}


@pytest.fixture
async def filled(nats_server: EmbeddedNats, bus: Bus, tmp_path: Path) -> AsyncIterator[Filled]:
    """The real sink writes the store (no dataset catalog needed here: conftest's data_dir builds one)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = data_dir / "gymforge.db"
    sup = Supervisor([AgentRunner(SinkAgent(AgentContext(bus=bus, data_dir=data_dir), db_path=db))])
    sink = asyncio.create_task(sup.run())
    try:
        facts = await fill(bus, db)
        await set_budget(bus, Limit(usd=1.0, tokens=None))
        yield Filled(server=nats_server, bus=bus, db=db, data_dir=data_dir, **facts)
    finally:
        sup.request_stop()
        await sink


@pytest.fixture
async def web(filled: Filled) -> AsyncIterator[WebServer]:
    s = config.load({"nats_url": filled.server.url, "data_dir": filled.data_dir}, environ={})
    async with WebServer(s, port=0) as server:
        await asyncio.wait_for(server.feed.listening.wait(), 10)
        yield server


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as r:
        assert r.status == status, (url, r.status, await r.text())
        return await r.json() if r.content_type == "application/json" else await r.text()


# --- the API over real HTTP --------------------------------------------------------------------


async def test_api_serves_funnel_series_bus_budget_tasks_and_trajectories(filled: Filled, web: WebServer) -> None:
    async with aiohttp.ClientSession(web.url) as http:
        summary = await get_json(http, "/api/summary")
        stages = {s["type"]: s for s in summary["funnel"]["stages"]}
        assert stages["trajectory.completed"]["count"] == 2 and stages["trajectory.accepted"]["count"] == 1
        assert stages["trajectory.accepted"]["conversion"] == 0.5 and stages["trajectory.accepted"]["rejected"] == 1
        assert stages["dataset.verified"]["conversion"] == 0.5 and stages["dataset.verified"]["rejected"] == 1
        assert stages["task.validated"]["rejected"] == 1
        assert stages["solve.requested"]["per_min"] == pytest.approx(2 / 10)
        assert summary["tasks"] == {"graded": 1, "rejected": 1}
        assert summary["usage"]["tokens"] == filled.tokens and summary["usage"]["calls"] == 3
        assert summary["breadth"] == {"datasets": 1, "task_types": 1, "domains": 1}  # penguins; tabular; the one topic

        series = await get_json(http, "/api/series?minutes=30")
        assert len(series["minutes"]) == 30
        assert sum(series["tokens"]) == filled.tokens
        assert sum(series["cost_usd"]) == pytest.approx(filled.cost)
        assert sum(series["throughput"]["all"]) == filled.events
        assert sum(series["throughput"]["trajectory.completed"]) == 2
        await get_json(http, "/api/series?minutes=0", status=400)
        await get_json(http, "/api/series?minutes=ten", status=400)

        bus = await get_json(http, "/api/bus")
        assert bus["connected"] and bus["live"]
        assert [c["role"] for c in bus["consumers"]] == ["sink"]  # durable roles only, not viewers
        assert bus["consumers"][0]["pending"] == 0
        assert bus["dead_letters"] == {"gf.dead.solver": 1}
        dead = (await get_json(http, "/api/dead"))["letters"]
        assert [(d["role"], d["subject"], d["reason"]) for d in dead] == [
            ("solver", "gf.solve.requested", "undecodable envelope: invalid JSON")]

        budget = await get_json(http, "/api/budget")
        assert budget["limit"] == {"usd": 1.0, "tokens": None} and budget["source"] == "kv"
        assert budget["spent"]["usd"] == pytest.approx(filled.cost) and budget["exhausted"] is None
        await set_budget(filled.bus, Limit(usd=0.01, tokens=None))
        assert (await get_json(http, "/api/budget"))["exhausted"].startswith("budget spent: $0.0510 of $0.0100")

        tasks = {t["task_id"]: t for t in (await get_json(http, "/api/tasks"))["tasks"]}
        assert tasks[filled.task_id]["solve_rate"] == 0.5 and tasks[filled.task_id]["trajectories"] == 2
        assert tasks[filled.rejected_task]["status"] == "rejected"

        task = await get_json(http, f"/api/tasks/{filled.task_id}")
        assert task["baseline_score"] == 0.81 and task["rounds"] == 2 and task["files"]["baseline.py"] == FIXED
        r0, r1 = task["rounds_detail"]
        assert (r0["revision"], r0["error"], r0["fixing"]) == (0, ERROR, None)
        assert set(r0["changed_files"]) == {"baseline.py", "evaluate.py", "prepare.py"}
        assert (r1["outcome"], r1["error"], r1["fixing"], list(r1["changed_files"])) == ("passed", None, ERROR,
                                                                                          ["baseline.py"])
        assert [(t["attempt"], t["status"]) for t in task["trajectories"]] == [(0, "accepted"), (1, "rejected")]
        rejected = await get_json(http, f"/api/tasks/{filled.rejected_task}")
        assert rejected["rounds_detail"][-1]["error"] == "baseline failed: SyntaxError: invalid syntax"
        assert rejected["rounds_detail"][-1]["outcome"] == "failed, task rejected"

        traj = await get_json(http, f"/api/trajectories/{filled.good.id}")
        assert traj["steps"] == len(GOOD_STEPS)
        assert [s["thought"] for s in traj["trajectory"]] == [s[0] for s in GOOD_STEPS]
        assert [s["action"] for s in traj["trajectory"]] == [s[1] for s in GOOD_STEPS]
        assert [s["observation"] for s in traj["trajectory"]] == [s[2] for s in GOOD_STEPS]
        assert [s["score"] for s in traj["trajectory"]] == [s[3] for s in GOOD_STEPS]
        assert traj["info"]["exit_status"] == "submitted" and traj["task_id"] == filled.task_id
        listed = (await get_json(http, f"/api/trajectories?task_id={filled.task_id}"))["trajectories"]
        assert {t["id"] for t in listed} == {filled.good.id, filled.evil.id} and "traj" not in listed[0]
        await get_json(http, "/api/tasks/no-such-task", status=404)
        await get_json(http, "/api/trajectories/no-such-id", status=404)

        async with http.get("/") as r:
            assert r.status == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get("/static/plot.js") as r:
            assert r.status == 200 and "javascript" in r.content_type


async def test_event_stream_carries_new_bus_events(filled: Filled, web: WebServer) -> None:
    async with aiohttp.ClientSession(web.url) as http, http.get("/api/events") as r:
        assert r.content_type == "text/event-stream"
        assert (await r.content.readuntil(b": connected\n\n")).endswith(b"connected\n\n")
        env = make_envelope("topic.requested", TopicRequested(domain="robotics", count=3), producer="test")
        await filled.bus.publish(env)
        frame = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    event, data = frame.decode().strip().split("\n")
    assert event == "event: gf"
    item = json.loads(data.removeprefix("data: "))
    assert {k: item[k] for k in ("subject", "id", "type", "summary")} == {
        "subject": "gf.topic.requested", "id": env.id, "type": "topic.requested", "summary": "3 × robotics (medium)"}


async def test_without_a_store_or_bus_the_api_answers_empty(tmp_path: Path) -> None:
    s = config.load({"nats_url": "nats://127.0.0.1:1", "data_dir": tmp_path}, environ={})
    async with WebServer(s, port=0) as server, aiohttp.ClientSession(server.url) as http:
        assert await get_json(http, "/api/summary") == {"store": None, "funnel": None}
        assert await get_json(http, "/api/tasks") == {"tasks": []}
        assert (await get_json(http, "/api/bus"))["connected"] is False
        assert (await get_json(http, "/api/budget"))["spent"]["usd"] == 0.0
        await get_json(http, "/api/tasks/x", status=404)


async def test_gymforge_web_command_serves_the_dashboard(filled: Filled, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gymforge.cli", "--nats-url", filled.server.url, "--data-dir", str(filled.data_dir),
        "web", "--port", "0", cwd=ROOT, stderr=asyncio.subprocess.PIPE)
    try:
        line = ""
        while "dashboard on" not in line:  # a loaded machine starts python slowly
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()  # type: ignore[union-attr]
            assert line, "gymforge web exited before serving"
        assert "dashboard on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        async with aiohttp.ClientSession(url) as http:
            assert "gymforge" in await get_json(http, "/")
            assert (await get_json(http, "/api/summary"))["funnel"]["events"]["task.graded"] == 1
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


# --- the pages in headless Chromium --------------------------------------------------------------


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)"
    return path


async def shows_no_raw_objects(page: Page) -> None:
    text = await page.locator("main").inner_text()
    assert "[object Object]" not in text and "undefined" not in text and "NaN" not in text


class Console:
    """Every console error and uncaught page error, per page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        return page

    def _console(self, m: ConsoleMessage) -> None:
        if m.type in ("error", "warning") and "EventSource" not in m.text:
            self.errors.append(f"{m.type}: {m.text}")


async def test_pages_in_headless_chromium_live_events_and_a_trajectory(filled: Filled, web: WebServer) -> None:
    console = Console()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = console.watch(await browser.new_page())
            await page.goto(web.url + "/")
            await page.wait_for_selector("body[data-loaded=yes][data-live=open]", timeout=15_000)
            completed = page.locator('#funnel .count[data-type="trajectory.completed"]')
            assert await completed.text_content() == "2"
            assert "sink" in await page.locator("#lag").inner_text()
            assert "$1.0000" in await page.locator("#budget").inner_text()
            assert "undecodable envelope" in await page.locator("#dead").inner_text()
            assert await page.locator("#plot-tokens svg path.line").count() == 1
            await shows_no_raw_objects(page)

            # a new event on the bus shows up live, with its markup as text
            before = int(await page.locator('#funnel .count[data-type="topic.proposed"]').text_content() or 0)
            title = f"Live <b>topic</b> {XSS}"
            env = make_envelope("topic.proposed", TopicProposed(title=title), producer="test")
            await filled.bus.publish(env)
            item = page.locator(f'#live li[data-id="{env.id}"]')
            await item.wait_for(timeout=10_000)
            assert title in await item.locator(".summary").text_content()
            await page.wait_for_function(
                "n => document.querySelector('#funnel .count[data-type=\"topic.proposed\"]').textContent == n",
                arg=str(before + 1), timeout=10_000)
            assert await page.locator("#live b, #live img, #live script").count() == 0

            # task browser -> task -> trajectory
            await page.goto(web.url + "/tasks")
            await page.wait_for_selector("body[data-loaded=yes]")
            await page.get_by_role("link", name=filled.task_id).click()
            await page.wait_for_selector("body[data-loaded=yes] #task-title")
            assert await page.locator("#solve-rate").text_content() == "50%"
            await shows_no_raw_objects(page)
            assert await page.locator(".round").count() == 2
            assert "NameError: name 'pd' is not defined" in await page.locator(".round-error").first.text_content()
            await page.get_by_role("link", name="attempt 0").click()
            await page.wait_for_selector("body[data-loaded=yes] .step")
            assert await page.locator(".step").count() == len(GOOD_STEPS)
            assert await page.locator(".step .command").nth(1).text_content() == "python baseline.py"
            assert await page.locator("#exit-status").text_content() == "submitted"
            assert await page.locator("#scores svg circle").count() == 3  # the validate/submit scores
            await shows_no_raw_objects(page)
            await page.get_by_role("link", name=filled.task_id).click()  # back to its task
            await page.wait_for_selector("body[data-loaded=yes] #task-title")

            # model-written markup in a trajectory is shown, never run
            await page.goto(f"{web.url}/trajectories/{filled.evil.id}")
            await page.wait_for_selector("body[data-loaded=yes] .step")
            assert XSS in await page.locator(".step .thought").first.text_content()
            assert "</pre><b>bold</b>" in await page.locator(".step .observation").first.text_content()
            assert await page.evaluate("window.__xss === undefined")
            assert await page.locator("main img, main script, main b").count() == 0
            assert await page.locator("#exit-status").text_content() == "exit_cost"

            unwatched = await browser.new_page()  # its API call is a 404, which Chromium logs as an error
            await unwatched.goto(web.url + "/trajectories/nope")
            await unwatched.wait_for_selector("text=No such trajectory")
        finally:
            await browser.close()
    assert console.errors == []


async def test_live_feed_survives_a_nats_restart(filled: Filled, web: WebServer) -> None:
    queue = web.feed.subscribe()
    await filled.server.stop()
    await filled.server.start()
    env = make_envelope("topic.requested", TopicRequested(domain="after restart", count=1), producer="test")
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # once, as soon as this client has reconnected, maybe before the feed has re-subscribed
        try:
            await filled.bus.publish(env)
            break
        except Exception:
            assert asyncio.get_running_loop().time() < deadline, "the test's client did not reconnect"
            await asyncio.sleep(0.1)
    while (item := await asyncio.wait_for(queue.get(), 10)) is not None and item["id"] != env.id:
        pass  # the feed follows on from the last message it passed on: nothing published meanwhile is lost
    assert item is not None and item["type"] == "topic.requested"
    async with aiohttp.ClientSession(web.url) as http:
        assert (await get_json(http, "/api/bus"))["connected"]
