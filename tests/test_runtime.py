"""Agents as real processes: SIGKILL mid-handler, SIGTERM during work, and the sink's exactly-once view."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from agents.runtime import Agent, AgentContext, AgentRunner, Emit, Supervisor
from bus import Bus, EmbeddedNats, Event, make_envelope
from domain.payloads import TopicRequested
from store.db import Store

ROOT = Path(__file__).resolve().parents[1]


async def spawn_replica(url: str, markers: Path, *args: str) -> asyncio.subprocess.Process:
    before = set(markers.glob("ready.*"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.slow_agent", url, str(markers), *args, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    await wait_for(lambda: len(set(markers.glob("ready.*")) - before) > 0, 20)
    return proc


async def wait_for(cond, timeout: float) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def store_count(db: Path, sql: str) -> int:
    store = await Store.open(db, readonly=True)
    try:
        return int(await store.scalar(sql))
    finally:
        await store.close()


async def test_sigkill_mid_handler_another_replica_finishes_exactly_once(
    nats_server: EmbeddedNats, bus: Bus, sink: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    first = await spawn_replica(nats_server.url, markers, "--work", "60", "--ack-wait", "2")
    req = make_envelope("topic.requested", TopicRequested(domain="vision", count=4), producer="test")
    await bus.publish(req)
    await wait_for(lambda: any(markers.glob(f"started.{first.pid}.*")), 15)
    second = await spawn_replica(nats_server.url, markers, "--work", "60", "--ack-wait", "2")
    first.send_signal(signal.SIGKILL)  # after it published its first output, before it acked
    await first.wait()
    try:
        await wait_for(lambda: any(markers.glob(f"finished.{second.pid}.{req.id}")), 30)
        await wait_for_acked(bus, "slow")
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
    info = await bus.js.stream_info("GYMFORGE", subjects_filter="gf.topic.proposed")
    assert info.state.subjects == {"gf.topic.proposed": 4}  # the killed replica's output was not duplicated
    await wait_until_count(sink, "SELECT COUNT(*) FROM topics", 4)
    assert await store_count(sink, "SELECT COUNT(*) FROM ledger WHERE type='topic.proposed'") == 4
    assert await store_count(sink, "SELECT COUNT(*) FROM ledger WHERE type='topic.requested'") == 1


async def wait_for_acked(bus: Bus, durable: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await bus.js.consumer_info("GYMFORGE", durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{durable}: pending {info.num_pending}, ack pending {info.num_ack_pending}")
        await asyncio.sleep(0.1)


async def wait_until_count(db: Path, sql: str, n: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await _count_or_zero(db, sql)) != n:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{sql}: {got} != {n}")
        await asyncio.sleep(0.1)


async def test_sigterm_finishes_short_work_and_leaves_long_work_unacked(
    nats_server: EmbeddedNats, bus: Bus, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    # short work within the grace period: finished and acked before the process exits
    proc = await spawn_replica(nats_server.url, markers, "--work", "1", "--grace", "10")
    short = make_envelope("topic.requested", TopicRequested(domain="short", count=1), producer="test")
    await bus.publish(short)
    await wait_for(lambda: any(markers.glob(f"started.{proc.pid}.{short.id}")), 15)
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0
    assert any(markers.glob(f"finished.{proc.pid}.{short.id}"))
    info = await bus.js.consumer_info("GYMFORGE", "slow")
    assert info.num_ack_pending == 0 and info.num_pending == 0

    # long work past the grace period: cancelled, NOT acked, then redone by the next replica
    proc = await spawn_replica(nats_server.url, markers, "--work", "60", "--grace", "0.5", "--ack-wait", "2")
    long = make_envelope("topic.requested", TopicRequested(domain="long", count=2), producer="test")
    await bus.publish(long)
    await wait_for(lambda: any(markers.glob(f"started.{proc.pid}.{long.id}")), 15)
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0
    assert not any(markers.glob(f"finished.*.{long.id}"))
    info = await bus.js.consumer_info("GYMFORGE", "slow")
    assert info.num_ack_pending == 1  # un-acked, waiting for redelivery
    nxt = await spawn_replica(nats_server.url, markers, "--ack-wait", "2")
    try:
        await wait_for(lambda: any(markers.glob(f"finished.{nxt.pid}.{long.id}")), 30)
        await wait_for_acked(bus, "slow")
    finally:
        nxt.send_signal(signal.SIGTERM)
        await nxt.wait()
    info = await bus.js.stream_info("GYMFORGE", subjects_filter="gf.topic.proposed")
    assert info.state.subjects == {"gf.topic.proposed": 3}


async def _count_or_zero(db: Path, sql: str) -> int:
    try:
        return await store_count(db, sql) if db.exists() else 0
    except sqlite3.OperationalError:  # the sink has not created its schema yet
        return 0


class KvAgent(Agent):
    """Opens a KV bucket at start (as the proposer and filter do) and records what it handles."""

    role = "kvtest"
    consumes = (TopicRequested,)

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.seen: list[str] = []

    async def start(self) -> None:
        await self.ctx.bus.js.create_key_value(bucket="gf-kvtest", history=1)

    async def handle(self, event: Event) -> list[Emit]:
        self.seen.append(event.id)
        return []


async def test_an_agent_starting_while_nats_restarts_waits_for_it(
    nats_server: EmbeddedNats, bus: Bus, tmp_path: Path
) -> None:
    await nats_server.stop()  # down: the agent's start-up requests time out
    agent = KvAgent(AgentContext(bus=bus, data_dir=tmp_path))
    sup = Supervisor([AgentRunner(agent)], grace_s=1)
    running = asyncio.create_task(sup.run())
    try:
        await asyncio.sleep(7)  # longer than a JetStream API request's 5 s timeout
        assert not running.done(), running.exception()
        await nats_server.start()  # back, on the same port and store
        req = make_envelope("topic.requested", TopicRequested(domain="restart", count=1), producer="test")
        await bus.publish(req)
        await wait_for(lambda: agent.seen == [req.id], 60)
    finally:
        sup.request_stop()
        await asyncio.wait_for(running, 30)


async def test_an_agent_stopped_while_waiting_for_nats_stops(nats_server: EmbeddedNats, bus: Bus, tmp_path: Path) -> None:
    await nats_server.stop()
    sup = Supervisor([AgentRunner(KvAgent(AgentContext(bus=bus, data_dir=tmp_path)))], grace_s=1)
    running = asyncio.create_task(sup.run())
    await asyncio.sleep(6)
    sup.request_stop()
    await asyncio.wait_for(running, 10)  # no exception, no waiting out the whole patience
