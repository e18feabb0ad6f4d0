"""The consume path's semantics: heartbeats keep a long handler's message from redelivery, the concurrency
limit holds, delivery details reach the Event, a handler's outputs leave in order (offloaded ones too) and
are all confirmed before the input's ack, and a failed publish naks the input for a de-duplicated retry."""

from __future__ import annotations

import asyncio

from bus import Bus, BusSettings, Consumer, ConsumerSpec, make_envelope, subject_for
from bus.codec import Event
from domain.payloads import PAYLOADS, TopicProposed, TopicRequested
from tests.test_bus import run_consumer


async def test_heartbeat_keeps_long_handler_from_redelivery(bus: Bus) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(event: Event) -> list:
        seen.append(event.deliveries)
        await asyncio.sleep(5.0)  # ack_wait 1.5 s: without heartbeats it would be redelivered ~3 times
        done.set()
        return []

    c = Consumer(bus, ConsumerSpec("hb", [subject_for("topic.requested")], ack_wait_s=1.5), "hb", handler,
                 concurrency=4)
    for i in range(3):
        await bus.publish(make_envelope("topic.requested", TopicRequested(domain=f"d{i}", count=1), producer="t"))
    await run_consumer(c, done, timeout=20.0)
    await asyncio.sleep(0.3)
    assert seen == [1, 1, 1], seen
    info = await bus.js.consumer_info("GYMFORGE", "hb")
    assert info.num_redelivered == 0 and info.num_ack_pending == 0, info
    assert c._ticker is None  # noqa: SLF001


async def test_concurrency_limit_and_event_metadata(bus: Bus) -> None:
    now = peak = 0
    events: list[Event] = []
    done = asyncio.Event()

    async def handler(event: Event) -> list:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        events.append(event)
        await asyncio.sleep(0.02)
        now -= 1
        if len(events) == 60:
            done.set()
        return []

    c = Consumer(bus, ConsumerSpec("cc", [subject_for("topic.requested")]), "cc", handler, concurrency=5)
    for i in range(60):
        env = make_envelope("topic.requested", TopicRequested(domain=f"d{i}", count=1), producer="t")
        await bus.js.publish(subject_for("topic.requested"), env.model_dump_json(exclude_none=True).encode(),
                             headers={"Nats-Msg-Id": env.id, "X-Test": str(i)})
    await run_consumer(c, done, timeout=20.0)
    assert peak == 5, peak
    assert sorted(e.stream_seq for e in events) == list(range(1, 61))
    assert all(e.subject == "gf.topic.requested" and e.deliveries == 1 for e in events)
    assert {e.headers["X-Test"] for e in events} == {str(i) for i in range(60)}
    assert all(e.headers["Nats-Msg-Id"] == e.id for e in events)


async def test_outputs_in_order_and_published_before_ack(nats_server) -> None:  # noqa: ANN001
    bus = await Bus.connect(BusSettings(url=nats_server.url, inline_limit=2048), types=PAYLOADS)
    try:
        done = asyncio.Event()

        async def handler(event: Event) -> list:
            outs = []
            for k in range(6):
                big = "x" * (5000 if k % 2 == 0 else 10)  # every other one by reference
                outs.append(make_envelope("topic.proposed", TopicProposed(title=f"t{k}", description=big),
                                          producer="o", parent=event.envelope, key=k))
            done.set()
            return outs

        c = Consumer(bus, ConsumerSpec("o", [subject_for("topic.requested")]), "o", handler)
        await bus.publish(make_envelope("topic.requested", TopicRequested(domain="d", count=1), producer="t"))
        await run_consumer(c, done, timeout=20.0)
        await asyncio.sleep(0.3)
        info = await bus.js.consumer_info("GYMFORGE", "o")
        assert info.num_ack_pending == 0 and info.num_pending == 0
        sub = await bus.js.pull_subscribe(subject_for("topic.proposed"), durable="chk")
        msgs = await sub.fetch(6, timeout=2)
        titles = [(await bus.resolve(m.data)).payload.title for m in msgs]
        assert titles == [f"t{k}" for k in range(6)], titles
        assert len((await bus.resolve(msgs[0].data)).payload.description) == 5000
    finally:
        await bus.close()


async def test_failing_publish_naks_input(bus: Bus) -> None:
    tries: list[int] = []
    done = asyncio.Event()

    async def handler(event: Event) -> list:
        tries.append(event.deliveries)
        env = make_envelope("topic.proposed", TopicProposed(title="x"), producer="f", parent=event.envelope)
        if event.deliveries == 1:
            env = env.model_copy(update={"type": "no such type"})  # subject outside the stream: publish fails
        else:
            done.set()
        return [make_envelope("topic.proposed", TopicProposed(title="y"), producer="f", parent=event.envelope, key=1),
                env]

    from bus import RetryPolicy
    c = Consumer(bus, ConsumerSpec("f", [subject_for("topic.requested")]), "f", handler,
                 retry=RetryPolicy(base_delay_s=0.05))
    await bus.publish(make_envelope("topic.requested", TopicRequested(domain="d", count=1), producer="t"))
    await run_consumer(c, done, timeout=20.0)
    await asyncio.sleep(0.3)
    assert tries == [1, 2], tries
    info = await bus.js.stream_info("GYMFORGE", subjects_filter="gf.topic.proposed")
    assert info.state.subjects == {"gf.topic.proposed": 2}  # dedup across the retry
