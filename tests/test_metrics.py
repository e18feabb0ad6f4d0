"""Metrics and health: the Prometheus text format, sandbox runs counted through a real bwrap sandbox,
and a real `gymforge agent proposer --metrics-port` daemon scraped over HTTP while it handles events
(through the real openai SDK to the offline teacher), loses NATS, and gets it back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from agents.runtime import Agent, AgentContext, AgentRunner, Emit, Supervisor
from bus import Bus, EmbeddedNats, Event, RetryPolicy, make_envelope
from domain.payloads import TopicProposed, TopicRequested
from gymforge import config
from gymforge.app import build_agent
from gymforge.metrics import MeteredBackend, Metrics, Registry
from sandbox import get_backend
from teacher.server import TeacherServer
from tests.helpers.mirror import mirror_env

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; every line must be a comment or a well-formed sample."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_text_format_counters_gauges_histograms_and_escaping() -> None:
    reg = Registry()
    c = reg.counter("jobs_total", "Jobs done")
    c.inc(role="sink")
    c.inc(2, role='we"ird\\role\nx')
    h = reg.histogram("took_seconds", "Time", buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.7, 3.0):
        h.observe(v, role="sink")
    reg.gauge("depth", "Queue depth").set(7)
    text = reg.render()
    assert "# TYPE jobs_total counter" in text and "# TYPE took_seconds histogram" in text
    got = parse(text)
    assert got['jobs_total{role="sink"}'] == 1
    assert got['jobs_total{role="we\\"ird\\\\role\\nx"}'] == 2
    assert got['took_seconds_bucket{role="sink",le="0.1"}'] == 1
    assert got['took_seconds_bucket{role="sink",le="1"}'] == 3  # cumulative
    assert got['took_seconds_bucket{role="sink",le="+Inf"}'] == 4
    assert got['took_seconds_count{role="sink"}'] == 4
    assert abs(got['took_seconds_sum{role="sink"}'] - 4.25) < 1e-9
    assert got["depth"] == 7


async def test_sandbox_runs_are_counted_by_outcome_in_a_real_sandbox(tmp_path: Path) -> None:
    metrics = Metrics()
    backend = MeteredBackend(get_backend("bwrap"), metrics, "debugger")
    assert backend.name == "bwrap"  # everything but open() is the real backend's
    ws = tmp_path / "ws"
    ws.mkdir()
    async with await backend.open(ws) as session:
        assert (await session.exec("echo hi")).stdout == "hi\n"
        assert (await session.exec("exit 3")).exit_code == 3
        assert (await session.exec("sleep 5", timeout=0.5)).timed_out
        await session.put("f.txt", b"x")  # not an exec: not counted
    got = parse(metrics.render())
    for outcome in ("ok", "error", "timeout"):
        assert got[f'gymforge_sandbox_runs_total{{outcome="{outcome}",role="debugger"}}'] == 1
    assert got['gymforge_sandbox_run_seconds_count{role="debugger"}'] == 3
    assert got['gymforge_sandbox_run_seconds_bucket{role="debugger",le="0.1"}'] < 3  # the timeout took 0.5 s


async def test_instrument_meters_the_sandbox_of_the_roles_that_have_one(bus: Bus, data_dir: Path) -> None:
    s = config.load({"nats_url": "nats://127.0.0.1:1", "data_dir": data_dir}, environ={})
    runners = [AgentRunner(build_agent(role, bus, s)) for role in ("debugger", "solver", "filter")]
    Metrics().instrument(runners)
    assert isinstance(runners[0].agent.backend, MeteredBackend)  # type: ignore[attr-defined]
    assert isinstance(runners[1].agent.backend, MeteredBackend)  # type: ignore[attr-defined]
    assert not hasattr(runners[2].agent, "backend")


class Flaky(Agent):
    """Fails the first delivery of every event, then handles it."""

    role = "flaky"
    consumes = (TopicRequested,)
    produces = (TopicProposed,)

    async def handle(self, event: Event) -> Sequence[Emit]:
        if event.deliveries == 1:
            raise ValueError("first try fails")
        return [Emit(TopicProposed(title=f"{event.payload_as(TopicRequested).domain} topic"))]


async def test_handled_and_failed_events_per_role_through_a_real_consumer(bus: Bus, tmp_path: Path) -> None:
    runner = AgentRunner(Flaky(AgentContext(bus=bus, data_dir=tmp_path)), retry=RetryPolicy(base_delay_s=0.05))
    metrics = Metrics()
    metrics.instrument([runner])
    sup = Supervisor([runner])
    task = asyncio.create_task(sup.run())
    try:
        for domain in ("vision", "text"):
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain=domain, count=1), producer="t"))
        deadline = asyncio.get_running_loop().time() + 20
        while metrics.handled.get(role="flaky") < 2:
            assert asyncio.get_running_loop().time() < deadline, metrics.render()
            await asyncio.sleep(0.05)
    finally:
        sup.request_stop()
        await task
    got = parse(metrics.render())
    assert got['gymforge_events_failed_total{error="ValueError",role="flaky"}'] == 2
    assert got['gymforge_events_handled_total{role="flaky"}'] == 2
    assert got['gymforge_handler_seconds_count{role="flaky"}'] == 4  # failures are timed too


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as r:
        return r.status, await r.text()


async def until(probe, what: str, timeout: float = 30.0, every: float = 0.1,  # noqa: ANN001, ANN201
                proc: asyncio.subprocess.Process | None = None):
    """Call async `probe` until it returns something truthy (generous timeouts: the machine may be loaded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        assert proc is None or proc.returncode is None, f"{what}: the process exited with {proc.returncode}"
        try:
            got = await probe()
        except aiohttp.ClientError:
            got = None
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(every)


async def test_agent_daemon_serves_metrics_health_and_readiness(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with TeacherServer(port=0) as teacher, aiohttp.ClientSession() as http:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gymforge.cli", "agent", "proposer", "--metrics-port", f"127.0.0.1:{port}",
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "GYMFORGE_NATS_URL": nats_server.url, "GYMFORGE_DATA_DIR": str(data_dir),
                 "GYMFORGE_TEACHER_PORT": str(teacher.port), "GYMFORGE_LOG_LEVEL": "warning"})
        try:
            await until(lambda: _status_is(http, f"{base}/readyz", 200), "ready after start", timeout=90,
                        proc=proc)
            assert await get(http, f"{base}/healthz") == (200, "ok\n")
            before = parse((await get(http, f"{base}/metrics"))[1])
            assert before['gymforge_events_handled_total{role="proposer"}'] == 0
            assert 'gymforge_llm_calls_total{model="offline-teacher-rule-based",role="proposer"}' not in before

            await bus.publish(make_envelope("topic.requested", TopicRequested(domain="tabular data", count=2),
                                            producer="test"))
            after = await until(lambda: _scrape_when(http, base, 'gymforge_events_handled_total{role="proposer"}', 1),
                                "the request handled")
            llm = '{model="offline-teacher-rule-based",role="proposer"}'
            assert after[f"gymforge_llm_calls_total{llm}"] >= 1
            assert after[f"gymforge_llm_latency_seconds_count{llm}"] == after[f"gymforge_llm_calls_total{llm}"]
            prompt = after['gymforge_llm_tokens_total{kind="prompt",model="offline-teacher-rule-based",role="proposer"}']
            assert prompt > 0
            assert after['gymforge_handler_seconds_count{role="proposer"}'] == 1
            assert after['gymforge_handler_seconds_sum{role="proposer"}'] > 0
            assert after['gymforge_events_in_flight{role="proposer"}'] == 0

            await bus.publish_raw("gf.topic.requested", b'{"not": "an envelope"}')  # poison
            dead = await until(lambda: _scrape_when(http, base, 'gymforge_dead_letters_total{role="proposer"}', 1),
                               "the poison dead-lettered")
            assert dead['gymforge_events_handled_total{role="proposer"}'] == 1  # never reached the handler

            await nats_server.stop()
            status, why = await until(lambda: _status_is(http, f"{base}/readyz", 503), "not ready without NATS")
            assert "NATS" in why
            assert (await get(http, f"{base}/healthz"))[0] == 200  # alive, only not ready
            await nats_server.start()
            await until(lambda: _status_is(http, f"{base}/readyz", 200), "ready again", timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]


async def _status_is(http: aiohttp.ClientSession, url: str, want: int) -> tuple[int, str] | None:
    status, text = await get(http, url)
    return (status, text) if status == want else None


async def _scrape_when(http: aiohttp.ClientSession, base: str, key: str, at_least: float) -> dict[str, float] | None:
    got = parse((await get(http, f"{base}/metrics"))[1])
    return got if got.get(key, 0) >= at_least else None


async def test_run_serves_metrics_for_every_role(nats_server: EmbeddedNats, data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gymforge.cli", "run", "--no-seed", "--idle-seconds", "120",
        "--metrics-port", f"127.0.0.1:{port}", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GYMFORGE_NATS_URL": nats_server.url, "GYMFORGE_DATA_DIR": str(data_dir),
             "GYMFORGE_TEACHER_PORT": str(free_port()), "GYMFORGE_LOG_LEVEL": "warning",
             **await asyncio.to_thread(mirror_env)})
    try:
        async with aiohttp.ClientSession() as http:
            await until(lambda: _status_is(http, f"{base}/readyz", 200), "run ready", timeout=90, proc=proc)
            got = parse((await get(http, f"{base}/metrics"))[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    roles = {"proposer", "verifier", "coder", "debugger", "solver", "filter", "sink"}
    assert {k.split('"')[1] for k in got if k.startswith("gymforge_events_handled_total")} == roles
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err.decode()
