"""`gymforge run`: everything in one process on embedded defaults, with live progress.

Starts whatever is not already running (the embedded NATS, every role, the sink), seeds topics, shows
the funnel, and stops when M trajectories are accepted or the pipeline has been idle for a while.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

from agents.budget import BudgetWatcher
from agents.runtime import AgentRunner, Supervisor
from bus import Bus, make_envelope
from domain.payloads import TopicRequested
from gymforge.app import (
    ROLES,
    build_agent,
    connect,
    ensure_data_dir,
    ensure_mirror,
    ensure_nats,
    ensure_teacher,
    retry_policy,
    start_budget,
    with_settings,
)
from gymforge.commands.bus_cmds import breadth_line, store_status
from gymforge.config import Settings
from gymforge.daemon import tune_gc
from gymforge.errors import UserError
from gymforge.web.listen import listen_arg

# seeded in this order, `--topics` spread over them; the first five cover every task type
DOMAINS = ("computer vision", "natural language processing", "tabular data", "time series", "healthcare",
           "economics", "social science", "education")
STAGES = {"topic.proposed": "topics", "dataset.verified": "datasets", "task.validated": "tasks",
          "solve.requested": "solves", "trajectory.completed": "traj", "trajectory.accepted": "accepted"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole pipeline in one process on embedded defaults")
    p.add_argument("--topics", type=int, default=5, help="topics to seed (default 5)")
    p.add_argument("--attempts", type=int, default=None, help="solve attempts per task")
    p.add_argument("--until-trajectories", type=int, default=None, help="stop after M accepted trajectories")
    p.add_argument("--idle-seconds", type=float, default=8.0, help="stop after this long with no work left")
    p.add_argument("--no-seed", action="store_true", help="seed nothing; process what is injected")
    p.add_argument("--metrics-port", default=None, metavar="[HOST:]PORT", type=listen_arg,
                   help="serve /metrics, /healthz and /readyz here")
    p.set_defaults(func=with_settings(cmd_run))


def cmd_run(args: argparse.Namespace, s: Settings) -> int:
    if args.topics < 0 or (args.until_trajectories is not None and args.until_trajectories < 1):
        raise UserError("--topics must be >= 0 and --until-trajectories >= 1")
    if args.attempts is not None:
        if args.attempts < 1:
            raise UserError("--attempts must be at least 1")
        s = s.with_keys({"attempts": args.attempts})
    tune_gc()
    summary = asyncio.run(run_pipeline(s, topics=0 if args.no_seed else args.topics,
                                       until=args.until_trajectories, idle_s=args.idle_seconds,
                                       metrics_port=args.metrics_port))
    summary["exports"] = asyncio.run(write_exports(s, summary["started_at"]))
    summary["breadth"] = (asyncio.run(store_status(s)) or {}).get("breadth")  # `status`'s read of the store
    print_summary(summary, s)
    return 0


async def write_exports(s: Settings, stamp: str) -> dict[str, str]:
    """The accepted trajectories as SFT JSONL (curriculum order) and .traj files under data_dir/exports."""
    from gymforge.export_sft import Filters, export_sft
    from gymforge.export_traj import export_traj

    out = s.data_dir / "exports" / f"run-{stamp}"
    try:
        sft = await export_sft(s, out / "sft", Filters(order="curriculum"))
        await export_traj(s, out / "traj", Filters())
    except UserError as exc:  # nothing accepted yet: the run still succeeded
        return {"none": str(exc)}
    return {"sft": str(out / "sft" / "train.jsonl"), "traj": str(out / "traj"), "examples": str(sft.written)}


async def run_pipeline(s: Settings, *, topics: int, until: int | None, idle_s: float,
                       progress: bool = True, metrics_port: str | None = None) -> dict[str, Any]:
    ensure_data_dir(s)
    server = await ensure_nats(s)
    teacher = mirror = None
    try:
        mirror = await ensure_mirror(s, progress)
        if mirror and progress:
            print(f"offline Hub mirror (a stand-in for the Hugging Face Hub) on {mirror.base_url}: "
                  f"{len(mirror.index.datasets)} datasets", file=sys.stderr)
        teacher = await ensure_teacher(s)
        if teacher and progress:
            print(f"offline teacher (rule-based stand-in, not a model) on {teacher.base_url}", file=sys.stderr)
        bus = await connect(s, name="gymforge-run")
        try:
            return await _run(bus, s, topics, until, idle_s, progress, metrics_port)
        finally:
            await bus.close()
    finally:
        if teacher:
            await teacher.stop()
        if mirror:
            await mirror.stop()
        if server:
            await server.stop()


async def _run(bus: Bus, s: Settings, topics: int, until: int | None, idle_s: float, progress: bool,
               metrics_port: str | None = None) -> dict:
    from gymforge.web.health import start_exporter

    budget = await start_budget(bus, s)
    runners = [AgentRunner(build_agent(r, bus, s, gate=budget.exhausted), retry=retry_policy(s)) for r in ROLES]
    sup = Supervisor(runners, grace_s=s.shutdown_grace_s)
    sup.install_signal_handlers()
    exporter = await start_exporter(metrics_port, bus, sup)
    if exporter and progress:
        print(f"metrics on http://{exporter.host}:{exporter.port}/metrics", file=sys.stderr)
    agents = asyncio.create_task(sup.run())
    started, started_at = time.monotonic(), time.strftime("%Y%m%d-%H%M%S")
    if topics and "proposer" in ROLES:
        await seed(bus, topics)
    counts: dict[str, int] = {}
    try:
        counts = await watch(bus, sup, agents, until, idle_s, progress, started, budget)
    finally:
        sup.request_stop()
        await asyncio.gather(agents, return_exceptions=True)
        await budget.stop()
        if exporter:
            await exporter.stop()
    failure = agents.exception() if agents.done() and not agents.cancelled() else None
    if failure is not None:  # an agent died (e.g. at start-up): say so instead of reporting an empty run
        raise UserError(f"an agent stopped the run: {type(failure).__name__}: {failure}")
    return {"counts": counts, "elapsed_s": time.monotonic() - started, "tokens": budget.spent_tokens,
            "cost_usd": budget.spent_usd, "started_at": started_at}


async def seed(bus: Bus, topics: int) -> None:
    per = [topics // len(DOMAINS) + (1 if i < topics % len(DOMAINS) else 0) for i in range(len(DOMAINS))]
    for domain, n in zip(DOMAINS, per, strict=True):
        if n:
            await bus.publish(make_envelope("topic.requested", TopicRequested(domain=domain, count=n), producer="run"))


async def watch(bus: Bus, sup: Supervisor, agents: asyncio.Task, until: int | None, idle_s: float,
                progress: bool, started: float, budget: BudgetWatcher) -> dict[str, int]:
    idle_since: float | None = None
    counts: dict[str, int] = {}
    while not agents.done() and not sup.stopped.is_set():
        await asyncio.sleep(1.0)
        with contextlib.suppress(Exception):
            counts = await subject_counts(bus)
        if progress:
            print_progress(counts, time.monotonic() - started, budget.spent_tokens, budget.spent_usd)
        if until is not None and counts.get("trajectory.accepted", 0) >= until:
            break
        busy = await pipeline_busy(bus, sup)
        idle_since = None if busy else (idle_since or time.monotonic())
        if idle_since is not None and time.monotonic() - idle_since >= idle_s:
            break
    if progress:
        print(file=sys.stderr)
    return counts


async def subject_counts(bus: Bus) -> dict[str, int]:
    info = await bus.js.stream_info(bus.settings.stream, subjects_filter="gf.>")
    return {k.removeprefix("gf."): v for k, v in (info.state.subjects or {}).items()}


async def pipeline_busy(bus: Bus, sup: Supervisor) -> bool:
    if any(r.consumer.stats.in_flight for r in sup.runners):
        return True
    for r in sup.runners:
        try:
            info = await bus.js.consumer_info(bus.settings.stream, r.consumer.spec.durable)
        except Exception:
            return True
        if info.num_pending or info.num_ack_pending:
            return True
    return False


def progress_line(counts: dict[str, int], elapsed: float, tokens: int, cost_usd: float) -> str:
    """The funnel's counts, the trajectory rate, tokens and cost on one line."""
    funnel = "  ".join(f"{label} {counts.get(k, 0)}" for k, label in STAGES.items())
    dead = sum(v for k, v in counts.items() if k.startswith("dead."))
    per_min = 60.0 * counts.get("trajectory.completed", 0) / max(elapsed, 1e-9)
    return (f"[{elapsed:6.1f}s] {funnel}  dead {dead} | {per_min:5.1f} traj/min  "
            f"{tokens / 1000:,.1f}k tok  ${cost_usd:.2f}")


def print_progress(counts: dict[str, int], elapsed: float, tokens: int, cost_usd: float) -> None:
    line = progress_line(counts, elapsed, tokens, cost_usd)
    if sys.stderr.isatty():
        print("\r" + line, end="", file=sys.stderr, flush=True)
    elif int(elapsed) % 10 == 0:  # a log, not a live line: every ~10 s
        print(line, file=sys.stderr, flush=True)


def print_summary(summary: dict[str, Any], s: Settings) -> None:
    c = summary["counts"]
    print(f"gymforge run finished in {summary['elapsed_s']:.1f}s")
    for k in ("topic.proposed", "dataset.verified", "dataset.rejected", "task.validated", "task.rejected",
              "trajectory.completed", "trajectory.accepted", "trajectory.rejected", "task.graded"):
        print(f"  {k:<22} {c.get(k, 0):>6}")
    print(f"  dead letters           {sum(v for k, v in c.items() if k.startswith('dead.')):>6}")
    print(f"  model tokens           {summary.get('tokens', 0):>6}  (${summary.get('cost_usd', 0.0):.4f})")
    if summary.get("breadth"):
        print(f"  {breadth_line(summary['breadth'])}")
    print(f"store: {s.db_path}")
    exports = summary.get("exports") or {}
    if "sft" in exports:
        print(f"exports: SFT JSONL ({exports['examples']} examples) {exports['sft']}")
        print(f"         .traj files {exports['traj']}")
    elif exports:
        print(f"exports: none ({exports['none']})")
