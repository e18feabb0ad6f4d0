"""The bus against a real nats-server: publish/consume/ack, dedup, dead letters, payloads by reference."""

from __future__ import annotations

import asyncio
import json

import pytest

from bus import (
    Bus,
    Consumer,
    ConsumerSpec,
    DeadLetter,
    Poison,
    RetryPolicy,
    Transient,
    decode,
    make_envelope,
    subject_for,
)
from bus.codec import Event
from bus.connection import BusSettings
from domain.payloads import PAYLOADS, TopicProposed, TopicRequested


def topic(title: str = "Predict iris species") -> TopicProposed:
    return TopicProposed(title=title, domain="botany")


async def collect(bus: Bus, durable: str, subjects: list[str], n: int, timeout: float = 5.0) -> list[Event]:
    await bus.ensure_consumer(ConsumerSpec(durable=durable, filter_subjects=subjects))
    sub = await bus.js.pull_subscribe_bind(durable=durable, stream=bus.settings.stream)
    out: list[Event] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(out) < n and asyncio.get_running_loop().time() < deadline:
        try:
            msgs = await sub.fetch(batch=n - len(out), timeout=0.5)
        except Exception:
            continue
        for m in msgs:
            out.append(await bus.resolve(m.data))
            await m.ack()
    return out


async def run_consumer(consumer: Consumer, until: asyncio.Event, timeout: float = 10.0) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(until.wait(), timeout)
    finally:
        await consumer.drain(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_publish_consume_ack_round_trip(bus: Bus) -> None:
    req = make_envelope("topic.requested", TopicRequested(domain="vision", count=3), producer="test")
    seen: list[Event] = []
    done = asyncio.Event()

    async def handler(event: Event) -> list:
        seen.append(event)
        outs = [make_envelope("topic.proposed", topic(f"t{i}"), producer="p", parent=event.envelope, key=i,
                              new_trace=True) for i in range(event.payload.count)]
        done.set()
        return outs

    consumer = Consumer(bus, ConsumerSpec("proposer", [subject_for("topic.requested")]), "proposer", handler)
    await bus.publish(req)
    await run_consumer(consumer, done)
    assert [e.id for e in seen] == [req.id]
    proposed = await collect(bus, "check", [subject_for("topic.proposed")], 3)
    assert sorted(e.payload.title for e in proposed) == ["t0", "t1", "t2"]
    assert all(e.envelope.parent_id == req.id for e in proposed)
    info = await bus.js.consumer_info(bus.settings.stream, "proposer")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_republished_ids_are_deduplicated(bus: Bus) -> None:
    env = make_envelope("topic.proposed", topic(), producer="test")
    first = await bus.publish(env)
    again = await bus.publish(env)
    assert not first.duplicate and again.duplicate
    info = await bus.js.stream_info(bus.settings.stream)
    assert info.state.messages == 1


async def test_invalid_payload_goes_to_dead_letters_with_reason(bus: Bus) -> None:
    bad = json.dumps({"id": "a" * 32, "type": "topic.requested", "time": "2026-01-01T00:00:00Z",
                      "trace_id": "a" * 32, "payload": {"domain": "x", "count": -4}}).encode()
    await bus.publish_raw(subject_for("topic.requested"), bad)
    await bus.publish_raw(subject_for("topic.requested"), b"{not json")
    handled: list[Event] = []

    async def handler(event: Event) -> list:
        handled.append(event)
        return []

    consumer = Consumer(bus, ConsumerSpec("proposer", [subject_for("topic.requested")]), "proposer", handler)
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(consumer, stop))
    letters = await collect(bus, "dlq", [subject_for("dead.proposer")], 2)
    stop.set()
    await task
    assert handled == []
    reasons = sorted(e.payload.reason for e in letters)
    assert "count" in reasons[0] and "greater than or equal to 1" in reasons[0]
    assert reasons[1].startswith("not JSON")
    assert all(isinstance(e.payload, DeadLetter) and e.payload.subject == "gf.topic.requested" for e in letters)
    assert {e.payload.data for e in letters} == {bad.decode(), "{not json"}


async def test_transient_errors_retry_then_dead_letter(bus: Bus) -> None:
    attempts: list[int] = []

    async def handler(event: Event) -> list:
        attempts.append(1)
        raise Transient("endpoint down", delay=0.05)

    retry = RetryPolicy(max_deliver=3, base_delay_s=0.05)
    consumer = Consumer(bus, ConsumerSpec("p", [subject_for("topic.requested")]), "p", handler, retry=retry)
    await bus.publish(make_envelope("topic.requested", TopicRequested(domain="d", count=1), producer="t"))
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(consumer, stop))
    letters = await collect(bus, "dlq", [subject_for("dead.p")], 1)
    stop.set()
    await task
    assert len(attempts) == 3
    assert "failed 3 deliveries" in letters[0].payload.reason and "endpoint down" in letters[0].payload.reason


async def test_large_payload_travels_by_reference(nats_server) -> None:
    bus = await Bus.connect(BusSettings(url=nats_server.url, inline_limit=1024), types=PAYLOADS)
    try:
        big = TopicProposed(title="big", description="x" * 50_000)
        env = make_envelope("topic.proposed", big, producer="t")
        await bus.publish(env)
        raw = await bus.js.get_last_msg(bus.settings.stream, subject_for("topic.proposed"))
        body = json.loads(raw.data)
        assert "payload" not in body and body["payload_ref"].startswith("payload/")
        assert len(raw.data) < 1024
        with pytest.raises(Poison):
            decode(raw.data, PAYLOADS)
        event = await bus.resolve(raw.data)
        assert event.payload.description == big.description
    finally:
        await bus.close()


async def test_stream_and_consumer_setup_is_idempotent_and_applies_changes(nats_server) -> None:
    bus = await Bus.connect(BusSettings(url=nats_server.url), types=PAYLOADS)
    await bus.ensure_consumer(ConsumerSpec("c", [subject_for("topic.proposed")], ack_wait_s=30))
    await bus.close()
    bus = await Bus.connect(BusSettings(url=nats_server.url, duplicate_window_s=600), types=PAYLOADS)
    try:
        await bus.ensure_consumer(ConsumerSpec("c", [subject_for("topic.proposed")], ack_wait_s=45))
        assert (await bus.js.stream_info("GYMFORGE")).config.duplicate_window == 600
        assert (await bus.js.consumer_info("GYMFORGE", "c")).config.ack_wait == 45
    finally:
        await bus.close()


async def test_a_failed_settle_is_logged_not_swallowed(bus: Bus) -> None:
    from structlog.testing import capture_logs

    from bus.acks import ACK, apply

    await bus.publish(make_envelope("topic.proposed", topic(), producer="test"))
    await bus.ensure_consumer(ConsumerSpec(durable="settle", filter_subjects=[subject_for("topic.proposed")]))
    sub = await bus.js.pull_subscribe_bind(durable="settle", stream=bus.settings.stream)
    msg = (await sub.fetch(batch=1, timeout=5))[0]
    await apply(msg, ACK)
    with capture_logs() as logs:
        await apply(msg, ACK)  # acked already: nats-py refuses, the policy says why and carries on
    [entry] = [e for e in logs if e["event"].startswith("could not settle")]
    assert entry["log_level"] == "warning" and entry["action"] == "ack" and entry["subject"] == "gf.topic.proposed"
    assert "MsgAlreadyAckd" in entry["error"]
