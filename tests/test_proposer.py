"""The proposer's claims across deliveries: a request redelivered after its handler was killed (topics claimed,
perhaps published, not acked) proposes the topics it claimed the first time, not new ones. Real NATS KV and
the offline teacher over HTTP."""

from __future__ import annotations

from pathlib import Path

from agents.proposer import ProposerAgent
from bus import Bus, EmbeddedNats, make_envelope
from bus.codec import validate_payload
from domain.payloads import PAYLOADS, TopicProposed, TopicRequested
from gymforge import config
from gymforge.app import build_agent
from teacher.server import TeacherServer


async def proposed(agent: ProposerAgent, domain: str, count: int, env=None) -> tuple[object, list[TopicProposed]]:  # noqa: ANN001
    env = env or make_envelope("topic.requested", TopicRequested(domain=domain, count=count), producer="test")
    emits = await agent.handle(validate_payload(env, PAYLOADS))
    assert all(e.type == "topic.proposed" for e in emits)
    return env, [e.payload for e in emits]  # type: ignore[misc]


async def test_a_redelivered_request_proposes_what_it_claimed_the_first_time(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path) -> None:
    async with TeacherServer() as teacher:
        s = config.load({"nats_url": nats_server.url, "data_dir": data_dir, "teacher_port": teacher.port},
                        environ={})
        agent = build_agent("proposer", bus, s)
        assert isinstance(agent, ProposerAgent)
        await agent.start()
        try:
            req, first = await proposed(agent, "tabular data", 2)
            _, again = await proposed(agent, "tabular data", 2, req)  # the same request, delivered again
            calls = teacher.teacher.counters.by_purpose.get("propose_topics", 0)
            _, other = await proposed(agent, "tabular data", 2)  # a new request in the domain
        finally:
            await agent.stop()
    by_title = sorted(first, key=lambda t: t.title)
    assert len(first) == 2 and sorted(again, key=lambda t: t.title) == by_title  # so the same derived ids
    assert calls == 1  # the redelivery did not ask the model again
    assert len(other) == 2 and not {t.title for t in other} & {t.title for t in first}
