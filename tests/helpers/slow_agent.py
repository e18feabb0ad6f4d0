"""A test role run as a real subprocess replica: for each topic.requested it publishes the first output
itself (partial progress), writes a marker file, then works for `--work` seconds before returning all
outputs. Used to kill a replica mid-handler and watch another one finish the message.

    python -m tests.helpers.slow_agent NATS_URL MARKER_DIR --work 30 --ack-wait 2 --grace 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from agents.runtime import Agent, AgentContext, AgentRunner, Emit, Supervisor
from bus import Bus, BusSettings, Event, make_envelope
from domain.payloads import PAYLOADS, TopicProposed, TopicRequested


class SlowAgent(Agent):
    role = "slow"
    consumes = (TopicRequested,)
    produces = (TopicProposed,)

    def __init__(self, ctx: AgentContext, marker_dir: Path, work_s: float) -> None:
        super().__init__(ctx)
        self.marker_dir, self.work_s = marker_dir, work_s

    async def handle(self, event: Event) -> Sequence[Emit]:
        req = event.payload_as(TopicRequested)
        outs = [Emit(TopicProposed(title=f"{req.domain} #{i}"), key=i, new_trace=True) for i in range(req.count)]
        first = make_envelope(outs[0].type, outs[0].payload, producer=self.role, parent=event.envelope,
                              key=outs[0].key, new_trace=True)
        await self.ctx.bus.publish(first)
        redo = any(self.marker_dir.glob(f"started.*.{event.id}"))  # a killed replica began it: be quick
        (self.marker_dir / f"started.{os.getpid()}.{event.id}").write_text("")
        await asyncio.sleep(0.1 if redo else self.work_s)
        (self.marker_dir / f"finished.{os.getpid()}.{event.id}").write_text("")
        return outs


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("marker_dir", type=Path)
    p.add_argument("--work", type=float, default=30.0)
    p.add_argument("--ack-wait", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=1.0)
    a = p.parse_args()
    SlowAgent.ack_wait_s = a.ack_wait
    bus = await Bus.connect(BusSettings(url=a.url), types=PAYLOADS)
    agent = SlowAgent(AgentContext(bus=bus, data_dir=a.marker_dir), a.marker_dir, a.work)
    sup = Supervisor([AgentRunner(agent, concurrency=1)], grace_s=a.grace)
    sup.install_signal_handlers()
    (a.marker_dir / f"ready.{os.getpid()}").write_text("")
    await sup.run()
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main())
