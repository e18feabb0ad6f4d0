"""The command line for real: inject -> tail, status vs the store, dead letters listed and replayed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from bus import Bus, Consumer, ConsumerSpec, EmbeddedNats, Poison, make_envelope, subject_for
from bus.codec import Event
from domain.payloads import TopicProposed
from tests.helpers.cli import gymforge
from tests.test_runtime import wait_until_count


async def test_inject_then_tail_json_shows_the_events(nats_server: EmbeddedNats, data_dir: Path) -> None:
    r1 = await gymforge("inject", "topic", "Forecast monthly CO2", "--domain", "climate",
                        url=nats_server.url, data_dir=data_dir)
    r2 = await gymforge("inject", "seed", "--domain", "vision", "--count", "3", url=nats_server.url, data_dir=data_dir)
    assert r1.code == 0 and r2.code == 0, r1.err + r2.err
    tail = await gymforge("tail", "--last", "10", "--no-follow", "--json", url=nats_server.url, data_dir=data_dir)
    assert tail.code == 0, tail.err
    events = [json.loads(x) for x in tail.out.splitlines()]
    assert [e["id"] for e in events] == [r1.out.strip(), r2.out.strip()]
    # a given topic asks the proposer for its datasets, as a seed asks for topics
    assert events[0]["payload"]["topic"] == "Forecast monthly CO2" and events[0]["type"] == "topic.requested"
    assert events[1]["payload"] == {"domain": "vision", "count": 3, "difficulty": "medium", "topic": None,
                                    "task_type": None}
    one = await gymforge("tail", "topic.requested", "--last", "5", "--no-follow", url=nats_server.url,
                         data_dir=data_dir)
    lines = one.out.splitlines()
    assert len(lines) == 2 and "datasets for 'Forecast monthly CO2' (climate)" in lines[0] and "3 × vision" in lines[1]
    by_trace = await gymforge("tail", "--trace", r1.out.strip()[:8], "--last", "5", "--no-follow",
                              url=nats_server.url, data_dir=data_dir)
    assert len(by_trace.out.splitlines()) == 1 and "Forecast monthly CO2" in by_trace.out


async def test_status_json_counts_match_the_store(nats_server: EmbeddedNats, data_dir: Path, sink: Path,
                                                  bus: Bus) -> None:
    for i in range(3):  # topics as the proposer publishes them
        await bus.publish(make_envelope("topic.proposed", TopicProposed(title=f"topic {i}"), producer="test"))
    await gymforge("inject", "seed", "--domain", "nlp", "--count", "2", url=nats_server.url, data_dir=data_dir)
    await wait_until_count(sink, "SELECT COUNT(*) FROM ledger", 4)
    r = await gymforge("status", "--json", url=nats_server.url, data_dir=data_dir)
    assert r.code == 0, r.err
    status = json.loads(r.out)
    assert status["stream"]["subjects"] == {"gf.topic.proposed": 3, "gf.topic.requested": 1}
    store_events = {f"gf.{k}": v for k, v in status["store"]["events"].items()}
    assert store_events == status["stream"]["subjects"]
    sink_consumer = next(c for c in status["consumers"] if c["name"] == "sink")
    assert sink_consumer["pending"] == 0 and sink_consumer["ack_pending"] == 0
    human = await gymforge("status", url=nats_server.url, data_dir=data_dir)
    assert "gf.topic.proposed" in human.out and "sink" in human.out
    assert "\x1b[" not in human.out  # plain when piped
    assert status["store"]["breadth"] == {"datasets": 0, "task_types": 0, "domains": 1}  # 3 topics, one domain
    assert "breadth: 0 datasets, 0 task types, 1 domains" in human.out
    watched = await gymforge("status", "--watch", "0.2", "--times", "3", url=nats_server.url, data_dir=data_dir)
    assert watched.code == 0 and watched.out.count("--- ") == 3 and watched.out.count("gf.topic.proposed") == 3
    assert "\x1b[" not in watched.out
    lines = await gymforge("status", "--json", "--watch", "0.2", "--times", "2", url=nats_server.url,
                           data_dir=data_dir)
    snapshots = [json.loads(x) for x in lines.out.splitlines()]
    assert len(snapshots) == 2 and snapshots[-1]["stream"]["subjects"] == status["stream"]["subjects"]
    bad = await gymforge("status", "--watch", "0", url=nats_server.url, data_dir=data_dir)
    assert bad.code == 2 and bad.err.strip() == "gymforge: --watch takes a positive number of seconds"


async def test_dead_letter_listed_then_replayed_after_a_fix(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path
) -> None:
    fixed = asyncio.Event()
    handled: list[Event] = []

    async def handler(event: Event) -> list:
        if not fixed.is_set():
            raise Poison("model reply could not be parsed")
        handled.append(event)
        return []

    consumer = Consumer(bus, ConsumerSpec("proposer", [subject_for("topic.requested")]), "proposer", handler)
    task = asyncio.create_task(consumer.run())
    try:
        r = await gymforge("inject", "seed", "--domain", "audio", "--count", "2", url=nats_server.url,
                           data_dir=data_dir)
        await wait_until_count(sink, "SELECT COUNT(*) FROM dead_letters", 1)
        listed = await gymforge("dlq", "list", "--json", url=nats_server.url, data_dir=data_dir)
        letters = [json.loads(x) for x in listed.out.splitlines()]
        assert len(letters) == 1 and letters[0]["reason"] == "model reply could not be parsed"
        assert letters[0]["subject"] == "gf.topic.requested" and letters[0]["role"] == "proposer"
        fixed.set()
        replay = await gymforge("dlq", "replay", letters[0]["id"][:10], url=nats_server.url, data_dir=data_dir)
        assert replay.code == 0 and "replayed" in replay.out, replay.err
        await asyncio.wait_for(_until(lambda: len(handled) == 1), 10)
        assert handled[0].id == r.out.strip() and handled[0].payload.count == 2
        await wait_until_count(sink, "SELECT COUNT(*) FROM dead_letters WHERE replayed = 1", 1)
        after = await gymforge("dlq", "list", url=nats_server.url, data_dir=data_dir)
        assert after.out.strip() == "no dead letters"
    finally:
        consumer.stop()
        await consumer.drain(1)
        task.cancel()


async def test_unknown_subject_reaches_dead_letters_via_the_sink(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path
) -> None:
    await bus.publish_raw("gf.bogus.thing", b'{"hello": "world"}')
    await wait_until_count(sink, "SELECT COUNT(*) FROM dead_letters", 1)
    listed = await gymforge("dlq", "list", "--json", url=nats_server.url, data_dir=data_dir)
    letter = json.loads(listed.out.splitlines()[0])
    assert letter["subject"] == "gf.bogus.thing" and letter["role"] == "sink"
    assert "envelope" in letter["reason"] or "type" in letter["reason"]


async def test_bad_input_is_one_line_and_nonzero(nats_server: EmbeddedNats, data_dir: Path, tmp_path: Path) -> None:
    cases = [
        (("inject", "seed", "--domain", "x", "--count", "zero"), {}),
        (("inject", "seed", "--domain", "x", "--count", "0"), {}),
        (("agent", "nope"), {}),
        (("status",), {"GYMFORGE_NATS_URL": "nats://127.0.0.1:1", "GYMFORGE_EMBEDDED_NATS": "false"}),
        (("status",), {"GYMFORGE_DATA_DIR": "/proc/forbidden", "GYMFORGE_NATS_URL": "nats://127.0.0.1:1"}),
        (("status",), {"GYMFORGE_NATS_URL": "nats://192.0.2.1:4222"}),  # remote and down
        (("run", "--topics", "1"), {"GYMFORGE_DATA_DIR": "/proc/forbidden"}),
        (("tail", "--since", "ten minutes"), {}),
        (("tail", "a b"), {}),
        (("dlq", "replay", "doesnotexist"), {}),
    ]
    for args, env in cases:
        r = await gymforge(*args, url=nats_server.url, data_dir=data_dir, env=env)
        assert r.code == 2, (args, r)
        assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("gymforge: "), (args, r.err)
        assert "Traceback" not in r.err


async def _until(cond) -> None:  # noqa: ANN001
    while not cond():
        await asyncio.sleep(0.05)


def test_the_daemons_garbage_collector_skips_start_up_objects_and_collects_less_often() -> None:
    """`gymforge agent` and `run` call tune_gc (in its own interpreter here: it changes process state)."""
    code = ("import gc; from gymforge.daemon import GC_THRESHOLDS, tune_gc; before = gc.get_freeze_count(); "
            "tune_gc(); print(before, gc.get_freeze_count() > 1000, gc.get_threshold() == GC_THRESHOLDS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "True", "True"]
