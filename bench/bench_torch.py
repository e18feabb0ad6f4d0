"""PyTorch task episodes: the wall time of one, and episodes per minute with N in flight, thread caps on vs off.

    .venv/bin/python bench/bench_torch.py [--dataset mnist_5k] [--episodes 3] [--concurrency 4] [--rounds 3]
        [--cpus 1] [--max-steps 50]

Not a test. A real torch task: the built-in dataset (default mnist_5k, 5,000 28x28 digits) materialised from the
catalog, the offline teacher's PyTorch baseline for it (task_runtime=torch), its baseline score measured in
the bwrap sandbox. Each episode is the solver role's own (SolverAgent.episode: the offline teacher over HTTP
through the openai SDK, commands in a bwrap session limited to --cpus, usage events on an embedded NATS
server), so an episode is what `gymforge run` spends per solve attempt: the baseline and each edit trained and
scored in the sandbox.

1. Episode wall time: --episodes episodes one at a time (attempts 0.. pick different edits), median and range,
   and the baseline's own run (prepare excluded) for scale.
2. Concurrency: --concurrency episodes started together (caps-off rounds are slow: minutes each), episodes/min = N / the wall time until the last one
   ends; rounds alternate caps on (`sandbox_thread_caps`, OMP_NUM_THREADS etc. = --cpus) and caps off (torch
   takes one thread per host core in every session), medians over --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.runtime import AgentContext  # noqa: E402
from agents.solver.agent import SolverAgent  # noqa: E402
from agents.taskrun import open_workspace  # noqa: E402
from bus.server import free_port  # noqa: E402
from catalog.local import LocalCatalog  # noqa: E402
from domain.payloads import SolveRequested  # noqa: E402
from domain.tasks import DataRef, TaskBundle  # noqa: E402
from gymforge import config  # noqa: E402
from gymforge.app import connect, ensure_nats, models  # noqa: E402
from gymforge.config import role_settings  # noqa: E402
from sandbox import backend_for  # noqa: E402
from teacher.bundles import write_bundle  # noqa: E402
from teacher.server import TeacherServer  # noqa: E402


def torch_task(root: Path, dataset: str) -> tuple[TaskBundle, Path]:
    catalog = LocalCatalog(root / "catalog")
    catalog.build_builtin()
    raw = root / "raw"
    catalog.materialize(dataset, raw)
    card = json.loads((raw / "card.json").read_text())
    draft = write_bundle(card, task_id=f"bench-{dataset}", runtime="torch")
    bundle = TaskBundle(task_id=f"bench-{dataset}", data=DataRef(key="local", splits={}), **draft.bundle_fields())
    return bundle, raw


async def baseline_run(s: config.Settings, bundle: TaskBundle, raw: Path, root: Path) -> tuple[float, float]:
    """The baseline's score and its run's wall time (prepare excluded) in a bwrap session."""
    workdir = Path(tempfile.mkdtemp(dir=root))
    ws = await open_workspace(backend_for(s.sandbox), bundle, raw, workdir,
                              s.sandbox.limits(float(bundle.training_timeout)))
    try:
        start = time.perf_counter()
        result = await ws.run("baseline", "python baseline.py", timeout=bundle.training_timeout)
        took = time.perf_counter() - start
        assert result.ok, result.stderr
        return (await ws.evaluate()).value, took
    finally:
        await ws.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def episode(agent: SolverAgent, request: SolveRequested, raw: Path, root: Path) -> tuple[float, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    try:
        recorder = await agent.episode(request, raw, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    traj = recorder.traj()
    return time.perf_counter() - start, {"steps": len(traj.trajectory), "exit": traj.info.exit_status,
                                         "score": traj.info.score}


def solver(s: config.Settings, bus: Any, root: Path) -> SolverAgent:
    return SolverAgent(AgentContext(bus=bus, data_dir=root, models=models(s)), role_settings(SolverAgent, s))


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-torch-"))
    try:
        bundle, raw = torch_task(root, args.dataset)
        async with TeacherServer() as teacher:
            base = {"data_dir": root, "teacher_port": teacher.port, "task_runtime": "torch",
                    "sandbox_cpus": args.cpus, "solver_max_steps": args.max_steps,
                    "nats_url": f"nats://127.0.0.1:{free_port()}"}
            s = config.load(base, environ={})
            server = await ensure_nats(s)
            bus = await connect(s, name="bench-torch")
            try:
                await run(args, s, base, bundle, raw, root, bus)
            finally:
                await bus.close()
                if server is not None:
                    await server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def run(args: argparse.Namespace, s: config.Settings, base: dict[str, Any], bundle: TaskBundle, raw: Path,
              root: Path, bus: Any) -> None:
    score, baseline_s = await baseline_run(s, bundle, raw, root)
    print(f"task: {bundle.name} ({bundle.task_type}), PyTorch baseline {bundle.metric} {score:.4f}, "
          f"baseline.py {baseline_s:.1f} s in a {args.cpus:g}-CPU bwrap session; {os.cpu_count()} host cores")

    def request(attempt: int) -> SolveRequested:
        return SolveRequested(bundle=bundle, attempt=attempt, attempts_total=args.episodes, baseline_score=score)

    agent = solver(s, bus, root)
    times = []
    for attempt in range(args.episodes):
        took, info = await episode(agent, request(attempt), raw, root)
        times.append(took)
        print(f"  episode {attempt}: {took:.1f} s, {info['steps']} steps, {info['exit']}, score {info['score']}")
    await agent.stop()
    print(f"one episode at a time: median {statistics.median(times):.1f} s (min {min(times):.1f}, "
          f"max {max(times):.1f}) over {len(times)}")

    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(args.rounds):
        for caps in (True, False) if round_ % 2 == 0 else (False, True):
            agent = solver(config.load({**base, "sandbox_thread_caps": caps}, environ={}), bus, root)
            start = time.perf_counter()
            done = await asyncio.gather(*(episode(agent, request(i), raw, root) for i in range(args.concurrency)))
            wall = time.perf_counter() - start
            await agent.stop()
            rates[caps].append(60 * args.concurrency / wall)
            scores = ", ".join(f"{info['score']}" for _, info in done)
            print(f"  round {round_}: caps {'on ' if caps else 'off'} {args.concurrency} episodes in {wall:.1f} s "
                  f"= {rates[caps][-1]:.2f}/min (scores {scores})")
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"{args.concurrency} concurrent episodes: caps on {on:.2f}/min, caps off {off:.2f}/min (medians of "
          f"{args.rounds}): {on / off:.2f}x")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist_5k", help="a built-in image, text or forecasting dataset")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpus", type=float, default=1.0, help="sandbox_cpus: each session's CPU limit")
    parser.add_argument("--max-steps", type=int, default=50, help="solver_max_steps")
    asyncio.run(main(parser.parse_args()))
