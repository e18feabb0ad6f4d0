"""The budget: once spent, model roles stop taking new work (visible in the logs); raising it resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.budget import Limit, set_budget
from agents.runtime import AgentRunner, Supervisor
from bus import Bus, EmbeddedNats, make_envelope
from domain.payloads import TopicRequested
from gymforge import config
from gymforge.app import build_agent, start_budget
from teacher.server import TeacherServer
from tests.helpers.cli import gymforge
from tests.test_runtime import wait_until_count


async def test_spent_budget_parks_new_work_until_raised(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path
) -> None:
    async with TeacherServer() as teacher:
        s = config.load({"nats_url": nats_server.url, "data_dir": data_dir, "teacher_port": teacher.port,
                         "budget_tokens": 1}, environ={})
        budget = await start_budget(bus, s)
        sup = Supervisor([AgentRunner(build_agent("proposer", bus, s, gate=budget.exhausted))], grace_s=2)
        task = asyncio.create_task(sup.run())
        try:
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain="tabular data", count=1),
                                            producer="t"))
            await wait_until_count(sink, "SELECT COUNT(*) FROM topics", 1, timeout=60)
            await wait_until_count(sink, "SELECT COUNT(*) FROM usage", 1, timeout=10)
            await asyncio.sleep(1.5)  # let the watcher count the usage event
            assert budget.exhausted() is not None and "budget spent" in budget.exhausted()
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain="time series", count=1),
                                            producer="t"))
            await asyncio.sleep(3)
            info = await bus.js.consumer_info("GYMFORGE", "proposer")
            assert info.num_pending == 1 and info.num_ack_pending == 0  # parked, not taken, not lost
            r = await gymforge("budget", "set", "--tokens", "1000000000", url=nats_server.url, data_dir=data_dir)
            assert r.code == 0, r.err
            await wait_until_count(sink, "SELECT COUNT(*) FROM topics", 2, timeout=60)
            assert budget.exhausted() is None
        finally:
            sup.request_stop()
            await task
            await budget.stop()
        await set_budget(bus, Limit())
