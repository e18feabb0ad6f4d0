"""Events per second through one pass-through stage, gymforge vs raw nats-py, on the same server.

    .venv/bin/python bench/bench_bus.py [--events 5000] [--repeats 5] [--concurrency 64]

One embedded nats-server serves the whole run. Each repeat, on a fresh stream and durable pull consumer:

- raw nats-py: N pre-published messages are pull-fetched in batches of `concurrency`; the messages of a
  batch are handled concurrently, each with one js.publish of an output (with a Nats-Msg-Id header) then
  msg.ack(), and the next batch is fetched when the whole batch is done.
- gymforge: N real `topic.requested` envelopes are published with Bus.publish, then an AgentRunner with
  `concurrency` handler slots (refilled as they free up) decodes + validates each, runs a handler that
  returns one `topic.proposed` Emit, publishes it with its derived id and acks it by the real ack policy.

The clock runs from just before consuming starts until every message is acked (the consumer's info shows
nothing pending and nothing awaiting an ack); filling the stream is not timed. Both sides carry the same
bytes: the gymforge input envelopes, and an output envelope of the same size. The sides alternate (which
one goes first swaps every repeat) and medians are reported. Besides events/s, this process's CPU time
per event is shown: on a busy host it moves much less than wall-clock throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from agents.runtime import Agent, AgentContext, AgentRunner, Emit
from bus import Bus, BusSettings, Consumer, EmbeddedNats, Envelope, Event, encode, make_envelope
from bus.connection import MSG_ID_HEADER
from domain.payloads import PAYLOADS, TopicProposed, TopicRequested
from gymforge import logs

RAW_STREAM = "BENCHRAW"
RAW_IN, RAW_OUT = "raw.in", "raw.out"
PUBLISH_CHUNK = 256  # publishes awaited together while filling a stream (not timed)
WARMUP_EVENTS = 500
PROPOSAL = TopicProposed(title="Detect crop disease from leaf images", domain="vision")


@dataclass(frozen=True)
class Sample:
    """One timed repeat: throughput, and this process's CPU per event (less sensitive to a busy host)."""

    events_per_s: float
    cpu_us_per_event: float


class Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def sample(self, n: int) -> Sample:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return Sample(n / wall, cpu / n * 1e6)


def request_envelope() -> Envelope:
    return make_envelope("topic.requested", TopicRequested(domain="vision", count=1), producer="bench")


def sample_output() -> bytes:
    """An encoded topic.proposed envelope: what the gymforge handler publishes, for the raw side to send."""
    return encode(make_envelope("topic.proposed", PROPOSAL, producer="bench", parent=request_envelope()))


async def in_chunks(calls: Sequence[Callable[[], Awaitable[object]]], size: int = PUBLISH_CHUNK) -> None:
    """Await zero-argument coroutine factories, `size` at a time."""
    for start in range(0, len(calls), size):
        await asyncio.gather(*(call() for call in calls[start:start + size]))


async def wait_settled(js: JetStreamContext, stream: str, durable: str) -> None:
    """Until the consumer has nothing left to deliver nor awaiting an ack."""
    while True:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.002)


async def delete_stream(js: JetStreamContext, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(name)


# --- raw nats-py ------------------------------------------------------------------------------


async def raw_fresh_stream(js: JetStreamContext, template: api.StreamConfig) -> None:
    await delete_stream(js, RAW_STREAM)
    config = api.StreamConfig(
        name=RAW_STREAM, subjects=[RAW_IN, RAW_OUT], storage=template.storage, retention=template.retention,
        duplicate_window=template.duplicate_window, max_age=template.max_age, allow_direct=True,
    )
    await js.add_stream(config)


async def raw_pass_through(msg: Msg, js: JetStreamContext, output: bytes) -> None:
    seq = msg.metadata.sequence.stream
    await js.publish(RAW_OUT, output, headers={MSG_ID_HEADER: f"out-{seq}"})
    await msg.ack()


async def raw_run(nc: Client, template: api.StreamConfig, n: int, concurrency: int) -> Sample:
    """One repeat of the baseline."""
    js = nc.jetstream()
    await raw_fresh_stream(js, template)
    data, output = encode(request_envelope()), sample_output()
    await in_chunks([lambda: js.publish(RAW_IN, data)] * n)
    config = api.ConsumerConfig(durable_name="raw", filter_subject=RAW_IN, ack_policy=api.AckPolicy.EXPLICIT,
                                max_ack_pending=max(1000, 4 * concurrency))
    await js.add_consumer(RAW_STREAM, config)
    sub = await js.pull_subscribe_bind(durable="raw", stream=RAW_STREAM)
    clock = Clock()
    done = 0
    while done < n:
        msgs = await sub.fetch(batch=min(concurrency, n - done), timeout=5.0)
        await asyncio.gather(*(raw_pass_through(m, js, output) for m in msgs))
        done += len(msgs)
    await wait_settled(js, RAW_STREAM, "raw")
    sample = clock.sample(n)
    await sub.unsubscribe()
    return sample


# --- gymforge ---------------------------------------------------------------------------------


class PassThrough(Agent):
    """One topic.proposed per topic.requested; notes when it has seen the n-th event."""

    role = "bench-proposer"
    consumes = (TopicRequested,)
    produces = (TopicProposed,)

    def __init__(self, ctx: AgentContext, expected: int) -> None:
        super().__init__(ctx)
        self.left = expected
        self.all_seen = asyncio.Event()

    async def handle(self, event: Event) -> Sequence[Emit]:
        self.left -= 1
        if self.left <= 0:
            self.all_seen.set()
        return [Emit(PROPOSAL)]


async def wait_handled(agent: PassThrough, consumer: Consumer, task: asyncio.Task[None], n: int) -> None:
    """Until the consumer has published and acked n events (no polling while the events flow)."""
    seen = asyncio.create_task(agent.all_seen.wait())
    await asyncio.wait([task, seen], return_when=asyncio.FIRST_COMPLETED)
    seen.cancel()
    if task.done():  # the runner crashed: surface it rather than wait forever
        task.result()
        raise RuntimeError("the agent runner stopped before handling every event")
    while consumer.stats.handled < n:  # the last few outputs and acks
        await asyncio.sleep(0.001)


async def gymforge_run(bus: Bus, data_dir: Path, n: int, concurrency: int) -> Sample:
    """One repeat through AgentRunner."""
    await delete_stream(bus.js, bus.settings.stream)
    await bus.ensure_stream()
    # each envelope is built as it is published and dropped after: the timed part does not carry N live
    # pydantic objects (the raw side holds none either; they would tax the garbage collector)
    await in_chunks([lambda: bus.publish(request_envelope())] * n)
    agent = PassThrough(AgentContext(bus=bus, data_dir=data_dir), n)
    runner = AgentRunner(agent, concurrency=concurrency)
    await bus.ensure_consumer(runner.consumer.spec)
    clock = Clock()
    task = asyncio.create_task(runner.run())
    await wait_handled(agent, runner.consumer, task, n)
    await bus.nc.flush()
    await wait_settled(bus.js, bus.settings.stream, runner.consumer.spec.durable)
    sample = clock.sample(n)
    await runner.consumer.drain(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return sample


# --- driver -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5000, help="events per repeat and side (default 5000)")
    p.add_argument("--repeats", type=int, default=5, help="repeats per side (default 5)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="in flight: the raw fetch batch, the gymforge handler slots (default 64)")
    return p.parse_args(argv)


def report(results: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    rate = {name: statistics.median(s.events_per_s for s in xs) for name, xs in results.items()}
    cpu = {name: statistics.median(s.cpu_us_per_event for s in xs) for name, xs in results.items()}
    print(f"\n{args.events} events x {args.repeats} repeats per side, {args.concurrency} in flight, one nats-server")
    print(f"\n{'side':<9} {'median ev/s':>11} {'min':>7} {'max':>7} {'CPU us/ev':>10}")
    for name, xs in results.items():
        rates = [s.events_per_s for s in xs]
        print(f"{name:<9} {rate[name]:>11.0f} {min(rates):>7.0f} {max(rates):>7.0f} {cpu[name]:>10.0f}")
    print(f"\nCPU per event of this process, gymforge/raw (median): {cpu['gymforge'] / cpu['raw']:.2f}")
    print(f"ratio (median): {rate['gymforge'] / rate['raw']:.2f} (target >= 0.50)")


async def run_sides(server: EmbeddedNats, data_dir: Path, args: argparse.Namespace) -> dict[str, list[Sample]]:
    bus = await Bus.connect(BusSettings(url=server.url), types=PAYLOADS)
    nc = await nats.connect(server.url)
    template = bus.stream_config()
    sides = {
        "raw": lambda k: raw_run(nc, template, k, args.concurrency),
        "gymforge": lambda k: gymforge_run(bus, data_dir, k, args.concurrency),
    }
    results: dict[str, list[Sample]] = {name: [] for name in sides}
    try:
        for side in sides.values():  # warm-up, not reported
            await side(min(args.events, WARMUP_EVENTS))
        for r in range(args.repeats):
            for name in (["raw", "gymforge"] if r % 2 == 0 else ["gymforge", "raw"]):
                sample = await sides[name](args.events)
                results[name].append(sample)
                print(f"repeat {r + 1} {name:<9} {sample.events_per_s:8.0f} ev/s "
                      f"{sample.cpu_us_per_event:6.0f} us CPU/ev", file=sys.stderr)
    finally:
        await nc.drain()
        await bus.close()
    return results


async def main(args: argparse.Namespace) -> None:
    logs.configure("info", "json")  # as agents run: info level, debug lines filtered out
    with tempfile.TemporaryDirectory(prefix="gf-bench-") as tmp:
        async with EmbeddedNats(Path(tmp) / "jetstream", port=0) as server:
            results = await run_sides(server, Path(tmp), args)
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
