"""The offline Hub mirror: its build time and size on disk, then topics per minute through proposer +
verifier against it, with the Hub response cache and without it (hf_cache_ttl_s=0: every answer asked
again, revalidated by its ETag), side by side.

    .venv/bin/python bench/bench_hub.py [--topics 48] [--repeats 3] [--latency-ms 0] [--mirror DIR]

The mirror is built once into a temporary directory (or `--mirror DIR` is used as it is; then no build is
timed). Each repeat, for each side (the order swaps every repeat), on a fresh nats-server and data dir: the
offline teacher (knowing the mirror's datasets) answers the proposer; the proposer asks the Hub search API
for hints; the verifier describes each candidate on the Hub API and the dataset viewer, materialises it
(or reuses it) and publishes dataset.verified / dataset.rejected. The clock runs from seeding the
topic.requested events (spread over the domains below) until every topic has its dataset event; the
agents' start-up (building the built-in catalog) is not timed. Also counted: HTTP requests the mirror
answered. Medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.runtime import AgentRunner, Supervisor
from bus import Bus, BusSettings, EmbeddedNats, make_envelope
from domain.payloads import PAYLOADS, TopicRequested
from gymforge import config, logs
from gymforge.app import build_agent
from hubmirror.build import build_mirror
from hubmirror.index import knowledge, load_index
from hubmirror.server import MirrorServer
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer

DOMAINS = ("healthcare", "economics", "ecology", "time series", "social science", "tabular data", "sports",
           "physical science")


@dataclass(frozen=True)
class Sample:
    topics_per_min: float
    requests: int
    seconds: float
    topics: int


class CountingMirror(MirrorServer):
    """The mirror, counting the requests it answers, each after `latency_s` (the real Hub is ~0.1-0.3 s away)."""

    requests = 0
    latency_s = 0.0

    def app(self) -> web.Application:
        built = super().app()

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests += 1
            await asyncio.sleep(self.latency_s)
            return await handler(request)

        built.middlewares.insert(0, count)
        return built


async def one_run(root: Path, ttl_s: float, topics: int, know: tuple[dict[str, Any], ...], latency_s: float) -> Sample:
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        async with EmbeddedNats(Path(tmp) / "nats", port=0) as nats_server, \
                TeacherServer(config=TeacherConfig(knowledge=know)) as teacher:
            mirror = CountingMirror(root)
            mirror.latency_s = latency_s
            await mirror.start()
            bus = await Bus.connect(BusSettings(url=nats_server.url), types=PAYLOADS)
            try:
                return await timed(bus, mirror, config.load({
                    "nats_url": nats_server.url, "data_dir": data_dir, "teacher_port": teacher.port,
                    "hf_endpoint": mirror.base_url, "hf_cache_ttl_s": ttl_s}, environ={}), topics)
            finally:
                await bus.close()
                await mirror.stop()


async def timed(bus: Bus, mirror: CountingMirror, s: config.Settings, topics: int) -> Sample:
    counts = {"topic": 0, "dataset": 0}
    last = [time.perf_counter()]

    async def on_event(msg: Any) -> None:
        counts[msg.subject.split(".")[1]] += 1
        last[0] = time.perf_counter()

    await bus.nc.subscribe("gf.dataset.>", cb=on_event)
    await bus.nc.subscribe("gf.topic.proposed", cb=on_event)
    agents = [build_agent(role, bus, s) for role in ("proposer", "verifier")]
    sup = Supervisor([AgentRunner(a) for a in agents], grace_s=2)
    for agent in agents:  # start-up (building the built-in catalog) before the clock
        await agent.start()
        agent.start = _noop  # type: ignore[method-assign]
    task = asyncio.create_task(sup.run())
    mirror.requests = 0
    started = time.perf_counter()
    for domain in DOMAINS:  # as `run` seeds: one request per domain (a near-duplicate title may be dropped)
        request = TopicRequested(domain=domain, count=topics // len(DOMAINS))
        await bus.publish(make_envelope("topic.requested", request, producer="bench"))
    try:
        while not (counts["dataset"] == counts["topic"] >= len(DOMAINS) and time.perf_counter() - last[0] > 3):
            await asyncio.sleep(0.1)
            if time.perf_counter() - started > 60 * topics:
                raise TimeoutError(f"{counts} after {60 * topics} s")
    finally:
        elapsed = last[0] - started  # up to the last dataset event
        sup.request_stop()
        await task
    return Sample(counts["topic"] * 60 / elapsed, mirror.requests, elapsed, counts["topic"])


async def _noop() -> None:
    return None


def disk_bytes(root: Path) -> int:
    out = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def build(root: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    index = build_mirror(root, force=True)
    return time.perf_counter() - started, len(index.datasets), disk_bytes(root)


async def main(args: argparse.Namespace) -> None:
    logs.configure(level="warning", fmt="console")
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        root = args.mirror or Path(tmp) / "hub-mirror"
        if args.mirror is None:
            seconds, count, size = build(root)
            print(f"mirror build: {count} datasets in {seconds:.1f} s, {size / 2**20:.1f} MiB on disk")
        index = load_index(root)
        know = tuple(knowledge(index))
        print(f"mirror: {len(index.datasets)} datasets, {len(know)} the offline teacher knows; "
              f"{args.topics} topics x {args.repeats} repeats per side, {args.latency_ms} ms per Hub answer")
        sides = {"cache (ttl 1 day)": 86400.0, "no cache (ttl 0)": 0.0}
        samples: dict[str, list[Sample]] = {name: [] for name in sides}
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                sample = await one_run(root, sides[name], args.topics, know, args.latency_ms / 1000)
                samples[name].append(sample)
                print(f"  repeat {repeat + 1} {name}: {sample.topics} topics, {sample.topics_per_min:.1f} topics/min, "
                      f"{sample.requests} Hub requests, {sample.seconds:.1f} s", flush=True)
        medians = {name: statistics.median(s.topics_per_min for s in got) for name, got in samples.items()}
        requests = {name: statistics.median(s.requests for s in got) for name, got in samples.items()}
        for name in sides:
            print(f"{name}: median {medians[name]:.1f} topics/min, {requests[name]:.0f} Hub requests")
        cached, uncached = list(sides)
        print(f"ratio cache / no cache: {medians[cached] / medians[uncached]:.2f}x topics/min, "
              f"{requests[cached] / max(requests[uncached], 1):.2f}x Hub requests")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=48, help="topics asked for, spread over the domains")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every Hub answer")
    parser.add_argument("--mirror", type=Path, default=None, help="a built mirror to use (no build timed)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
    sys.exit(0)
