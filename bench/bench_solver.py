"""The solver loop's own cost per step, side by side with mini-swe-agent, and episodes/s under concurrency.

    .venv/bin/python bench/bench_solver.py [--quick] [--steps 5] [--latency 1.0] [--concurrency 1,16,64,256]
        [--bwrap-concurrency 16] [--episodes 10] [--overhead-latency 0.02] [--diagnose]

Not a test. The model is the offline teacher (TeacherServer on port 0) serving a fixed script with a fixed
latency (Faults(latency_s=...)): `steps` replies "THOUGHT: step N.\n\n```bash\necho step N\n```", then one
submit reply (gymforge: `submit`; mini-swe-agent: `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`), so an
episode is steps + 1 model calls. The teacher runs in a child process, as a real endpoint is remote: its CPU
is not charged to the loop, and the synchronous mini-swe-agent can block on it.

1. Overhead per step, one episode at a time, the sides interleaved (same machine load) after a warm-up:
   - gymforge: agents.solver.loop.Episode with the real client (agents.llm.LLM, the openai SDK) and the
     solver's LLMModel; commands in a real sandbox session, bwrap and the `process` backend
     (GYMFORGE_SANDBOX_ALLOW_PROCESS=1, no isolation: it separates loop overhead from sandbox cost). No task:
     the Environment is a tiny one over that session whose score() returns a fixed Scored, so scoring is out
     of the measurement.
   - mini-swe-agent (v2, DefaultAgent; `pip install mini-swe-agent`, or the `bench` extra; skipped when
     absent): LitellmTextbasedModel (litellm, `openai/` prefix, api_base = the teacher, its action regex set to
     the ```bash block the script uses) and LocalEnvironment (a subprocess on the host). Its default tool-call
     model is not used: litellm's tool path needs the `mcp` package.
   - gymforge loop only: the same Episode with the script from memory and an environment that runs nothing.
   Both sides get the same system and instance texts. Times are taken around the Model and Environment calls
   on each side: per step, wall = from one model call's start to the next one's (the last step: to the end of
   the run); loop = wall - model - command. "above lat." is model time minus the teacher's fixed latency (the
   client library, HTTP and the teacher's handling); CPU/step is this process's CPU (client, sandbox parent
   side and loop; mini-swe-agent's thread included).
2. Episodes per second: `conc` asyncio tasks, one per sandbox session (opened before the clock starts), each
   runs gymforge Episodes back to back, so `conc` episodes are in flight at all times as in the solver (which
   keeps `concurrency` messages in flight); their starts are spread over one ideal episode (a fixed latency
   would otherwise keep them in lockstep). After a warm-up (two ideal episodes), a window (--window, 20 s)
   counts the model calls that end in it: episodes/s = calls / window / calls per episode, against the ideal
   conc / ((steps + 1) * latency) at a fixed latency of --latency (1 s). One LLM client is shared, built as the
   solver builds it (the openai SDK over aiohttp when `openai[aiohttp]` is installed), its Endpoint.concurrency
   raised to the largest concurrency under test. The process backend carries the target (loop cost, not the
   sandbox's); bwrap at --bwrap-concurrency. When the target is missed, an episode's time over the ideal is
   split into model calls above latency, commands and the loop, with the CPU ceiling of one event loop.
   --diagnose adds a level at the top concurrency with the SDK's default httpx client, side by side. The
   process's garbage collector is tuned as `gymforge agent` tunes it (gymforge/daemon.py).
Defaults take about 4 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no fetch of its price list
os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")

import openai  # noqa: E402

from agents.llm import LLM, Completion, Endpoint  # noqa: E402
from agents.solver.agent import LLMModel  # noqa: E402
from agents.solver.loop import Episode, EpisodeLimits, Output, Scored  # noqa: E402
from agents.solver.record import Recorder  # noqa: E402
from domain.model_api import TEACHER_MODEL  # noqa: E402
from gymforge.daemon import tune_gc  # noqa: E402
from prompts import render  # noqa: E402
from sandbox import Limits as SandboxLimits  # noqa: E402
from sandbox import Session, get_backend  # noqa: E402

MINI = "mini-swe-agent/local"
MINI_SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
MINI_ACTION_REGEX = r"```bash\s*\n(.*?)\n```"
SYSTEM = render("solver_system", action_format="thought_action", max_steps=50, training_timeout=300,
                command_timeout=25)
INSTANCE = "Benchmark episode: run the commands you are given, then submit. There is no task to solve."
FIXED_SCORE = Scored(metrics={"accuracy": 0.5}, value=0.5)
OPEN_AT_ONCE = 32  # sandbox sessions opened concurrently while setting up a level (not timed)


def script(steps: int, submit: str) -> list[str]:
    echo = [f"THOUGHT: step {i}.\n\n```bash\necho step {i}\n```\n" for i in range(1, steps + 1)]
    return [*echo, f"THOUGHT: done.\n\n```bash\n{submit}\n```\n"]


# --- the teacher, in a child process --------------------------------------------------------------


async def serve_teacher(latency: float, steps: int) -> None:
    """Child process: two teachers (gymforge's and mini-swe-agent's submit); URLs on stdout; stdin EOF stops."""
    from teacher.policy import TeacherConfig
    from teacher.server import Faults, TeacherServer

    servers = {side: TeacherServer(config=TeacherConfig(solve_script=tuple(script(steps, submit))),
                                   faults=Faults(latency_s=latency))
               for side, submit in (("gymforge", "submit"), ("mini", MINI_SUBMIT))}
    for server in servers.values():
        await server.start()
    print(json.dumps({side: s.base_url for side, s in servers.items()}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for server in servers.values():
        await server.stop()


class TeacherProcess:
    def __init__(self, latency: float, steps: int) -> None:
        self.latency = latency
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-teacher", "--latency", str(latency),
                                      "--steps", str(steps)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the teacher process did not start")
        self.urls: dict[str, str] = json.loads(line)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- timing around the Model and Environment calls ------------------------------------------------


@dataclass
class Spans:
    model: list[tuple[float, float]] = field(default_factory=list)
    command: list[tuple[float, float]] = field(default_factory=list)
    end: float = 0.0


@dataclass(frozen=True)
class StepTimes:
    wall: float
    model: float
    command: float

    @property
    def loop(self) -> float:
        return self.wall - self.model - self.command


def step_times(spans: Spans) -> list[StepTimes]:
    starts = [s for s, _ in spans.model]
    bounds = [*starts[1:], spans.end]
    out = []
    for (start, done), end in zip(spans.model, bounds, strict=True):
        command = sum(e - s for s, e in spans.command if start <= s < end)
        out.append(StepTimes(wall=end - start, model=done - start, command=command))
    return out


class TimedModel:
    """gymforge's Model, timed."""

    def __init__(self, inner: LLMModel, spans: Spans) -> None:
        self.inner, self.spans = inner, spans

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        start = time.perf_counter()
        try:
            return await self.inner.query(messages)
        finally:
            self.spans.model.append((start, time.perf_counter()))


@dataclass
class BenchEnvironment:
    """The loop's Environment over a sandbox session; score() returns a fixed Scored (scoring not measured)."""

    session: Session
    spans: Spans

    def timeout_for(self, command: str) -> float:
        return 25.0

    async def execute(self, command: str, timeout: float) -> Output:
        start = time.perf_counter()
        try:
            r = await self.session.exec(command, timeout=timeout)
        finally:
            self.spans.command.append((start, time.perf_counter()))
        return Output(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code, duration_s=r.duration_s,
                      timed_out=r.timed_out, oom_killed=r.oom_killed)

    async def score(self) -> Scored:
        now = time.perf_counter()
        self.spans.command.append((now, now))
        return FIXED_SCORE


def recorder(environment: str) -> Recorder:
    info = {"task_id": "bench", "attempt": 0, "metric": "accuracy", "direction": "maximize",
            "baseline_score": 0.5, "model": TEACHER_MODEL}
    return Recorder(SYSTEM, INSTANCE, info, {"action_format": "thought_action", "seed": 0}, environment)


async def gymforge_episode(llm: LLM, session: Session, steps: int, environment: str) -> Spans:
    spans = Spans()
    rec = recorder(environment)
    episode = Episode(TimedModel(LLMModel(llm, 0, "thought_action"), spans), BenchEnvironment(session, spans),
                      EpisodeLimits(max_steps=steps + 5), rec, "thought_action", {"accuracy": 0.5})
    await episode.run()
    spans.end = time.perf_counter()
    if rec.info.exit_status != "submitted" or len(rec.steps) != steps + 1:
        raise RuntimeError(f"gymforge episode ended {rec.info.exit_status} after {len(rec.steps)} steps: "
                           f"{rec.info.exit_detail}")
    return spans


# --- mini-swe-agent ---------------------------------------------------------------------------------


class TimedSync:
    """A mini-swe-agent model or environment with one method timed; everything else passes through."""

    def __init__(self, inner: Any, method: str, sink: list[tuple[float, float]]) -> None:
        self._inner, self._method, self._sink = inner, method, sink

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._sink.append((start, time.perf_counter()))
        return timed


def mini_episode(url: str, workdir: str, steps: int) -> Spans:
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.litellm_textbased_model import LitellmTextbasedModel

    spans = Spans()
    model = LitellmTextbasedModel(model_name=f"openai/{TEACHER_MODEL}", cost_tracking="ignore_errors",
                                  model_kwargs={"api_base": url, "api_key": "none"}, action_regex=MINI_ACTION_REGEX)
    agent = DefaultAgent(TimedSync(model, "query", spans.model),
                         TimedSync(LocalEnvironment(cwd=workdir), "execute", spans.command),
                         system_template="{{ gf_system }}", instance_template="{{ task }}", step_limit=steps + 5)
    result = agent.run(task=INSTANCE, gf_system=SYSTEM)
    spans.end = time.perf_counter()
    if result.get("exit_status") != "Submitted" or len(spans.model) != steps + 1:
        raise RuntimeError(f"mini-swe-agent episode ended {result.get('exit_status')} after {len(spans.model)} calls")
    return spans


# --- part 1: overhead per step -------------------------------------------------------------------


class ScriptedModel:
    """The loop-only side's model: the script from memory, no client, no endpoint."""

    def __init__(self, replies: list[str], spans: Spans) -> None:
        self.replies, self.spans, self.turn = replies, spans, 0

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        now = time.perf_counter()
        self.spans.model.append((now, now))
        text = self.replies[min(self.turn, len(self.replies) - 1)]
        self.turn += 1
        return Completion(text=text, prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=0.0, retries=0)


@dataclass
class NullEnvironment:
    """The loop-only side's environment: answers a command with its echo, runs nothing."""

    spans: Spans

    def timeout_for(self, command: str) -> float:
        return 25.0

    async def execute(self, command: str, timeout: float) -> Output:
        now = time.perf_counter()
        self.spans.command.append((now, now))
        return Output(stdout=command.removeprefix("echo ") + "\n", stderr="", exit_code=0, duration_s=0.0)

    async def score(self) -> Scored:
        return FIXED_SCORE


async def loop_only_episode(steps: int) -> Spans:
    spans = Spans()
    rec = recorder("gymforge:none")
    await Episode(ScriptedModel(script(steps, "submit"), spans), NullEnvironment(spans),
                  EpisodeLimits(max_steps=steps + 5), rec, "thought_action", {"accuracy": 0.5}).run()
    spans.end = time.perf_counter()
    return spans


@dataclass
class Side:
    name: str
    run: Any  # () -> Awaitable[Spans]
    times: list[StepTimes] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU over the timed episodes (mini-swe-agent's thread included)


def pct(xs: Sequence[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, round(q * (len(ys) - 1)))]


async def overhead(args: argparse.Namespace, root: Path) -> list[Side]:
    teacher = TeacherProcess(args.overhead_latency, args.steps)
    llm = LLM(Endpoint(base_url=teacher.urls["gymforge"], api_key="none", model=TEACHER_MODEL), "solver")
    sessions: list[Session] = []
    try:
        sides = []
        for backend in ("process", "bwrap"):
            ws = root / f"ws-{backend}"
            ws.mkdir()
            session = await get_backend(backend, allow_process=True).open(ws, SandboxLimits())
            sessions.append(session)
            sides.append(Side(f"gymforge/{backend}", lambda s=session, b=backend: gymforge_episode(
                llm, s, args.steps, f"gymforge:{b}")))
        if importlib.util.find_spec("minisweagent") is not None:
            mini_ws = root / "ws-mini"
            mini_ws.mkdir()
            sides.append(Side(MINI, lambda: asyncio.to_thread(
                mini_episode, teacher.urls["mini"], str(mini_ws), args.steps)))
        sides.append(Side("gymforge/loop only", lambda: loop_only_episode(args.steps)))
        for r in range(args.warmup + args.episodes):
            for side in sides if r % 2 == 0 else sides[::-1]:
                cpu = time.process_time()
                spans = await side.run()
                if r >= args.warmup:
                    side.cpu_s += time.process_time() - cpu
                    side.times += step_times(spans)
    finally:
        for session in sessions:
            await session.close()
        await llm.close()
        teacher.stop()
    return sides


def median_ms(xs: Sequence[StepTimes], key: str) -> float:
    return statistics.median(getattr(x, key) for x in xs) * 1e3


def report_overhead(sides: list[Side], args: argparse.Namespace) -> None:
    lat = args.overhead_latency * 1e3
    print(f"\n1. Per step, {args.episodes} episodes x {args.steps + 1} steps per side (after {args.warmup} warm-up), "
          f"teacher latency {lat:g} ms. ms; medians, and p90 of loop")
    print(f"{'side':<22} {'wall':>7} {'model':>7} {'above lat.':>10} {'command':>8} {'loop':>7} {'loop p90':>9} "
          f"{'CPU/step':>9}")
    for side in sides:
        xs, remote = side.times, not side.name.endswith("loop only")
        p90 = pct([x.loop for x in xs], 0.9) * 1e3
        above = f"{median_ms(xs, 'model') - lat:10.2f}" if remote else f"{'-':>10}"
        print(f"{side.name:<22} {median_ms(xs, 'wall'):7.2f} {median_ms(xs, 'model'):7.2f} {above} "
              f"{median_ms(xs, 'command'):8.2f} {median_ms(xs, 'loop'):7.3f} {p90:9.3f} "
              f"{side.cpu_s / len(xs) * 1e3:9.2f}")
    print("(loop = wall - model - command; CPU/step: this process's CPU, client and sandbox parent side included)")
    by = {side.name: side.times for side in sides}
    if MINI not in by:
        print("verdict: mini-swe-agent is not installed (.venv/bin/pip install mini-swe-agent): no comparison")
        return
    gf, mini = median_ms(by["gymforge/process"], "loop"), median_ms(by[MINI], "loop")
    word = "lower" if gf <= mini else "HIGHER"
    print(f"verdict: loop overhead per step, gymforge {gf:.3f} ms vs mini-swe-agent {mini:.3f} ms (median, "
          f"p90 {pct([x.loop for x in by['gymforge/process']], 0.9) * 1e3:.3f} vs "
          f"{pct([x.loop for x in by[MINI]], 0.9) * 1e3:.3f}): gymforge's is {word}; "
          f"model call above latency {median_ms(by['gymforge/process'], 'model') - lat:.2f} vs "
          f"{median_ms(by[MINI], 'model') - lat:.2f} ms")


# --- part 2: episodes per second ---------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """`concurrency` episodes in flight at all times for warm-up + window; what the window saw."""

    label: str
    concurrency: int
    window_s: float
    calls: int  # model calls that ended in the window
    episode_s: list[float]  # episodes that ended in the window: first call to end
    steps: list[StepTimes]  # their steps
    cpu_s: float  # this process's CPU seconds over the window
    teacher_cpu_s: float

    def rate(self, calls_per_episode: int) -> float:
        return self.calls / self.window_s / calls_per_episode

    def cpu_ms_per_step(self) -> float:
        return self.cpu_s / max(1, self.calls) * 1e3


def client(url: str, concurrency: int, transport: str) -> LLM:
    """The solver's client; Endpoint.concurrency raised to the concurrency under test. transport "httpx": the
    SDK's default client (httpx's own pool) instead of the aiohttp one gymforge uses when it is installed."""
    llm = LLM(Endpoint(base_url=url, api_key="none", model=TEACHER_MODEL, concurrency=concurrency), "solver")
    if transport == "httpx":
        llm.client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=llm.endpoint.timeout_s)
    return llm


async def open_sessions(backend: str, root: Path, n: int) -> list[Session]:
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    b = get_backend(backend, allow_process=True)

    async def one(i: int) -> Session:
        ws = root / f"load-{backend}-{i}"
        ws.mkdir()
        async with gate:
            return await b.open(ws, SandboxLimits())
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def steady(label: str, llm: LLM, teacher: TeacherProcess, sessions: Sequence[Session], steps: int,
                 latency: float, warmup_s: float, window_s: float) -> Load:
    """One worker per session runs episodes back to back (as the solver keeps `concurrency` messages in
    flight), the workers' starts spread over one ideal episode; after the warm-up, the window counts the
    model calls that end in it."""
    finished: list[Spans] = []
    stagger = (steps + 1) * latency / len(sessions)
    t0 = time.perf_counter()
    w0, w1 = t0 + warmup_s, t0 + warmup_s + window_s
    cpu: dict[str, float] = {}

    async def worker(session: Session, i: int) -> None:
        await asyncio.sleep(i * stagger)  # phases spread over one ideal episode, as a running solver's are
        while time.perf_counter() < w1:
            finished.append(await gymforge_episode(llm, session, steps, "gymforge:bench"))

    async def meter() -> None:
        await asyncio.sleep(w0 - time.perf_counter())
        cpu["here"], cpu["teacher"] = time.process_time(), teacher.cpu_s()
        await asyncio.sleep(w1 - time.perf_counter())
        cpu["here"], cpu["teacher"] = time.process_time() - cpu["here"], teacher.cpu_s() - cpu["teacher"]

    await asyncio.gather(meter(), *(worker(s, i) for i, s in enumerate(sessions)))
    calls = sum(w0 <= end < w1 for s in finished for _, end in s.model)
    inside = [s for s in finished if w0 <= s.end < w1]
    return Load(label, len(sessions), window_s, calls, [s.end - s.model[0][0] for s in inside],
                [t for s in inside for t in step_times(s)], cpu["here"], cpu["teacher"])


async def throughput(args: argparse.Namespace, root: Path) -> list[Load]:
    teacher = TeacherProcess(args.latency, args.steps)
    top = max([*args.concurrency, *args.bwrap_concurrency])
    plan = [("process", n, "aiohttp") for n in args.concurrency] + [("bwrap", n, "aiohttp")
                                                                    for n in args.bwrap_concurrency]
    if args.diagnose:
        plan.append(("process", max(args.concurrency), "httpx"))
    warmup = args.warmup_s if args.warmup_s is not None else 2 * (args.steps + 1) * args.latency
    loads: list[Load] = []
    sessions: dict[str, list[Session]] = {}
    try:
        for backend, n, transport in plan:
            if backend not in sessions:  # opened once, not timed; each level runs on the first n
                started = time.perf_counter()
                sessions[backend] = await open_sessions(backend, root, max(m for b, m, _ in plan if b == backend))
                print(f"  opened {len(sessions[backend])} {backend} sessions: {time.perf_counter() - started:.1f} s",
                      file=sys.stderr)
            llm = client(teacher.urls["gymforge"], top, transport)
            label = backend if transport == "aiohttp" else f"{backend}+httpx"
            try:
                load = await steady(label, llm, teacher, sessions[backend][:n], args.steps, args.latency, warmup,
                                    args.window)
            finally:
                await llm.close()
            print(f"  {label} x{n}: {load.calls} calls in the window", file=sys.stderr)
            loads.append(load)
    finally:
        for opened in sessions.values():
            await asyncio.gather(*(s.close() for s in opened))
        teacher.stop()
    return loads


def report_throughput(loads: list[Load], args: argparse.Namespace) -> None:
    calls, lat = args.steps + 1, args.latency
    print(f"\n2. Episodes/s with `conc` episodes in flight at all times, {calls} model calls each, latency {lat:g} s, "
          f"a {args.window:g} s window after the warm-up; ideal = conc / ({calls} x {lat:g} s)")
    print(f"{'sandbox':<15} {'conc':>5} {'ep/s':>7} {'ideal':>7} {'of ideal':>8} {'episode s':>9} {'model ms':>8} "
          f"{'cmd ms':>7} {'loop ms':>8} {'CPU ms/step':>11} {'CPU here':>8} {'teacher':>8}")
    for x in loads:
        ideal = x.concurrency / (calls * lat)
        episode = f"{statistics.median(x.episode_s):9.2f}" if x.episode_s else f"{'-':>9}"
        print(f"{x.label:<15} {x.concurrency:5d} {x.rate(calls):7.2f} {ideal:7.2f} {x.rate(calls) / ideal:8.1%} "
              f"{episode} {median_ms(x.steps, 'model'):8.1f} {median_ms(x.steps, 'command'):7.1f} "
              f"{median_ms(x.steps, 'loop'):8.2f} {x.cpu_ms_per_step():11.2f} {x.cpu_s / x.window_s:8.0%} "
              f"{x.teacher_cpu_s / x.window_s:8.0%}")
    print("(per step medians of the episodes that ended in the window; CPU ms/step: this process's CPU / model calls; "
          "CPU here, teacher: CPU s per wall s)")
    top = max((x for x in loads if x.label == "process"), key=lambda x: x.concurrency)
    share = top.rate(calls) / (top.concurrency / (calls * lat))
    verdict = "MET" if share >= 0.9 else "MISSED"
    print(f"verdict: process sandbox at concurrency {top.concurrency}: {share:.1%} of ideal (target >= 90%): {verdict}")
    base = [x for x in loads if x.label == "process+httpx"]
    if base:
        print(f"the SDK's default httpx client at {base[0].concurrency}: "
              f"{base[0].rate(calls) / (base[0].concurrency / (calls * lat)):.1%} of ideal, "
              f"{base[0].cpu_ms_per_step():.2f} ms CPU per step (gymforge's aiohttp client: {top.cpu_ms_per_step():.2f})")
    if share < 0.9:
        print("bound: " + bound(top, calls, lat))


def bound(x: Load, calls: int, latency: float) -> str:
    """Where a missed level's time went: an episode's time over the ideal, by part, and the CPU ceiling."""
    parts = {"model calls above latency": (median_ms(x.steps, "model") / 1e3 - latency) * calls,
             "commands (sandbox exec)": median_ms(x.steps, "command") / 1e3 * calls,
             "the loop": median_ms(x.steps, "loop") / 1e3 * calls}
    worst = max(parts, key=lambda k: parts[k])
    ceiling = 1e3 / x.cpu_ms_per_step() / calls / (x.concurrency / (calls * latency))
    split = ", ".join(f"{name} {v:.2f} s" for name, v in parts.items())
    return (f"an episode takes {x.concurrency / x.rate(calls):.2f} s against the ideal {calls * latency:g} s: {split}; "
            f"largest: {worst}. CPU: {x.cpu_ms_per_step():.2f} ms per step here, so one core (one event loop, the "
            f"GIL) drives at most {ceiling:.0%} of ideal; it got {x.cpu_s / x.window_s:.0%} of a core, the teacher "
            f"{x.teacher_cpu_s / x.window_s:.0%} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


# --- driver --------------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: few steps, episodes and levels")
    p.add_argument("--steps", type=int, default=None, help="echo steps per episode, then one submit (default 5)")
    p.add_argument("--latency", type=float, default=None, help="teacher latency for part 2 (1.0 s)")
    p.add_argument("--overhead-latency", type=float, default=0.02, help="teacher latency for part 1 (0.02 s)")
    p.add_argument("--episodes", type=int, default=None, help="part 1: timed episodes per side (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="part 1: warm-up episodes per side (default 1)")
    p.add_argument("--concurrency", type=ints, default=None, help="process-backend levels (default 1,16,64,256)")
    p.add_argument("--bwrap-concurrency", type=ints, default=None, help="bwrap levels (default 16; '' for none)")
    p.add_argument("--window", type=float, default=None, help="part 2: the measured window per level (default 20 s)")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="part 2: running before the window opens (default two ideal episodes)")
    p.add_argument("--diagnose", action="store_true",
                   help="one more level at the top concurrency with the SDK's default httpx client, side by side")
    p.add_argument("--serve-teacher", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"steps": 3 if quick else 5, "latency": 0.2 if quick else 1.0, "episodes": 2 if quick else 10,
                "window": 3.0 if quick else 20.0,
                "concurrency": [1, 16] if quick else [1, 16, 64, 256], "bwrap_concurrency": [4] if quick else [16]}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    positive = {"--steps": args.steps, "--latency": args.latency, "--overhead-latency": args.overhead_latency,
                "--episodes": args.episodes, "--window": args.window,
                "--concurrency": min(args.concurrency, default=0),
                "--bwrap-concurrency": min(args.bwrap_concurrency, default=1)}
    for flag, value in positive.items():
        if value <= 0:
            p.error(f"{flag} must be positive")
    if args.warmup < 0 or (args.warmup_s is not None and args.warmup_s < 0):
        p.error("--warmup and --warmup-s must not be negative")
    return args


async def main(args: argparse.Namespace) -> None:
    tune_gc()  # as `gymforge agent` and `gymforge run` do
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.steps} steps + submit per episode",
          file=sys.stderr)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gf-bench-solver-") as tmp:
        os.environ.setdefault("MSWEA_GLOBAL_CONFIG_DIR", str(Path(tmp) / "mini-swe-agent"))
        per_step = await overhead(args, Path(tmp))
        print(f"  part 1: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        loads = await throughput(args, Path(tmp))
    print(f"  total: {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    report_overhead(per_step, args)
    report_throughput(loads, args)


if __name__ == "__main__":
    logging.getLogger("sandbox.process").setLevel(logging.ERROR)  # its warning once per session
    arguments = parse_args()
    if arguments.serve_teacher:
        asyncio.run(serve_teacher(arguments.latency, arguments.steps))
    else:
        asyncio.run(main(arguments))
