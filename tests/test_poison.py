"""Poison and bad input: malformed JSON, an unknown schema version, an oversized payload and an unknown
subject under gf.> each reach a dead-letter subject with its reason and `dlq list` shows them (replaying a
letter after a fix: tests/test_cli.py); the event decoder, fuzzed, only ever answers an Event or Poison."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import (
    SCHEMA_VERSION,
    Bus,
    ConsumerSpec,
    EmbeddedNats,
    Event,
    Poison,
    decode,
    encode,
    make_envelope,
    subject_for,
)
from bus.consume import Consumer
from domain.payloads import PAYLOADS, TopicRequested
from tests.helpers.cli import gymforge
from tests.test_runtime import wait_until_count

VALID = make_envelope("topic.requested", TopicRequested(domain="tabular data", count=2), producer="test")


def variant(**changes: object) -> bytes:
    raw = json.loads(encode(VALID))
    raw.update(changes)
    return json.dumps(raw).encode()


POISON = {
    "malformed": b'{"id": "abc", "type": ',
    "schema": variant(id="b" * 32, schema_version=SCHEMA_VERSION + 1),
    "oversized": variant(id="c" * 32, payload={"domain": "x" * 600_000, "count": 1}),
}


async def test_each_kind_of_poison_is_dead_lettered_with_its_reason_and_replayable(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path) -> None:
    handled: list[Event] = []

    async def handler(event: Event) -> list:
        handled.append(event)
        return []

    consumer = Consumer(bus, ConsumerSpec("proposer", [subject_for("topic.requested")]), "proposer", handler)
    task = asyncio.create_task(consumer.run())
    try:
        for data in POISON.values():
            await bus.publish_raw(subject_for("topic.requested"), data)
        await bus.publish_raw("gf.nobody.listens", encode(VALID))  # an unknown subject: the sink's catch-all
        await wait_until_count(sink, "SELECT COUNT(*) FROM dead_letters", 4, timeout=30)
        listed = await gymforge("dlq", "list", "--json", url=nats_server.url, data_dir=data_dir)
        letters = {json.loads(line)["subject"] + "|" + json.loads(line)["reason"] for line in listed.out.splitlines()}
        reasons = "\n".join(sorted(letters))
        assert "gf.topic.requested|not JSON" in reasons, reasons
        assert f"unsupported schema_version {SCHEMA_VERSION + 1}" in reasons
        assert "domain: String should have at most 200 characters" in reasons
        assert any(x.startswith("gf.nobody.listens|") and "does not match" in x for x in letters), reasons
        assert handled == []  # none of it reached the handler
        plain = await gymforge("dlq", "list", url=nats_server.url, data_dir=data_dir)
        assert plain.code == 0 and len(plain.out.strip().splitlines()) >= 4
        # the consumer goes on: a good event after the poison is handled
        ok = await gymforge("inject", "seed", "--domain", "vision", "--count", "1", url=nats_server.url,
                            data_dir=data_dir)
        assert ok.code == 0
        await asyncio.wait_for(_until(lambda: len(handled) == 1), 15)
    finally:
        consumer.stop()
        await consumer.drain(1)
        task.cancel()
    info = await bus.js.consumer_info("GYMFORGE", "proposer")
    assert (info.num_pending, info.num_ack_pending) == (0, 0)  # the poison was terminated, not left pending


async def _until(cond) -> None:  # noqa: ANN001
    while not cond():
        await asyncio.sleep(0.05)


# --- the decoder, fuzzed ----------------------------------------------------------------------------


def decodes_or_poison(data: bytes) -> Event | None:
    try:
        return decode(data, PAYLOADS)
    except Poison as exc:
        assert str(exc)  # always a reason
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_decode_to_an_event_or_poison(data: bytes) -> None:
    decodes_or_poison(data)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(json.loads(encode(VALID)))), JSON, max_size=6))
def test_mutated_envelopes_decode_to_an_event_or_poison(changes: dict) -> None:
    raw = json.loads(encode(VALID))
    raw.update(changes)
    event = decodes_or_poison(json.dumps(raw).encode())
    if event is not None:  # what decodes is a well-formed event
        assert event.envelope.schema_version == SCHEMA_VERSION and isinstance(event.payload, TopicRequested)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200), st.integers(min_value=1, max_value=10_000),
       st.sampled_from(["easy", "medium", "hard"]))
def test_valid_events_round_trip(domain: str, count: int, difficulty: str) -> None:
    env = make_envelope("topic.requested", TopicRequested(domain=domain, count=count, difficulty=difficulty),
                        producer="fuzz")
    event = decode(encode(env), PAYLOADS, "topic.requested")
    assert event.envelope == env and event.payload == TopicRequested(domain=domain, count=count, difficulty=difficulty)
