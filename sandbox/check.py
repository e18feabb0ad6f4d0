"""`gymforge sandbox check`: escape attempts and limit probes run through a backend, each judged from
the host side where it can be (a listener, planted files, /proc), so the report says what is actually
contained and enforced on this machine, not what is configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .base import Backend, ExecResult, Limits, Session
from .gpu import HostGpus, host_gpus
from .runtimes import DEFAULT_RUNTIME, Runtime, get_runtime

CHECK_LIMITS = Limits(wall_time_s=20.0, memory_bytes=256 * 1024**2, cpus=1.0, pids=64, output_bytes=16 * 1024,
                      disk_bytes=64 * 1024**2)
PLANTED_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "NATS_URL", "GYMFORGE_CHECK_SECRET", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class Probe:
    name: str
    contained: bool
    detail: str


@dataclass(frozen=True)
class RuntimeReport:
    """What task code of a runtime profile can import inside the sandbox: module -> version, or the error."""

    name: str
    versions: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    threads: str = ""  # torch's (else OpenMP's) thread count as seen inside

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass
class Report:
    backend: str
    probes: list[Probe] = field(default_factory=list)
    enforcement: dict[str, str] = field(default_factory=dict)
    gpus: HostGpus = field(default_factory=lambda: HostGpus(0, "not looked for", ()))
    runtime: RuntimeReport = field(default_factory=lambda: RuntimeReport(DEFAULT_RUNTIME))

    @property
    def ok(self) -> bool:
        """Everything contained and every package of the task runtime importable."""
        return all(p.contained for p in self.probes) and self.runtime.ok

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "ok": self.ok, "probes": [asdict(p) for p in self.probes],
                "enforcement": self.enforcement, "gpus": asdict(self.gpus), "runtime": asdict(self.runtime)}


@dataclass
class Host:
    """What the probes try to reach: a loopback listener, planted files and variables, an outside dir."""

    token: str
    root: Path
    home_secret: Path
    port: int = 0
    connections: int = 0

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def data_secret(self) -> Path:
        return self.root / "data" / "secret.txt"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def home_probe(self) -> Path:
        return self.home_secret.with_name(self.home_secret.name + ".written")


@contextlib.contextmanager
def planted_env(token: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in PLANTED_ENV}
    os.environ.update({k: f"{token}-{k}" for k in PLANTED_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.asynccontextmanager
async def host_fixtures() -> Any:
    token = secrets.token_hex(8)
    root = Path(tempfile.mkdtemp(prefix="gf-check-"))
    host = Host(token, root, Path.home() / f".gymforge-check-{token}")
    for d in (host.workspace, host.data_secret.parent, host.outside):
        d.mkdir(parents=True)
    host.data_secret.write_text(token)
    host.home_secret.write_text(token)

    def _accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host.connections += 1
        writer.close()

    server = await asyncio.start_server(_accepted, "127.0.0.1", 0)
    host.port = server.sockets[0].getsockname()[1]
    try:
        with planted_env(token):
            yield host
    finally:
        server.close()
        await server.wait_closed()
        for path in (host.home_secret, host.home_probe):
            path.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def py(code: str) -> list[str]:
    return ["python", "-c", code]


# --- the probes: each runs in the session and judges the result ------------------------------------

async def probe_network(s: Session, h: Host) -> Probe:
    r = await s.exec(py(f"import socket; s = socket.create_connection(('127.0.0.1', {h.port}), timeout=3); "
                        "print('CONNECTED')"), timeout=10)
    ok = "CONNECTED" not in r.stdout and h.connections == 0
    return Probe("network: host loopback listener", ok, "unreachable" if ok else "connected to the host")


async def probe_dns(s: Session, h: Host) -> Probe:
    r = await s.exec(py("import socket; print(socket.getaddrinfo('pypi.org', 443)[0][4])"), timeout=10)
    return Probe("network: DNS lookup", r.exit_code != 0, _last_line(r) if r.exit_code else f"resolved {r.stdout.strip()}")


async def probe_write_outside(s: Session, h: Host) -> Probe:
    targets = [h.outside / "written", h.home_probe]
    code = "import sys\nfor p in sys.argv[1:]:\n  try:\n    open(p, 'w').write('x'); print('WROTE', p)\n  except OSError:\n    pass"
    r = await s.exec(["python", "-c", code, *map(str, targets)], timeout=10)
    landed = [str(t) for t in targets if t.exists()]
    ok = not landed and "WROTE" not in r.stdout
    return Probe("files: write outside the workspace", ok, "denied" if ok else f"written: {landed or r.stdout.strip()}")


async def probe_read_planted(s: Session, h: Host) -> Probe:
    r = await s.exec(["cat", str(h.home_secret), str(h.data_secret)], timeout=10)
    ok = h.token not in r.stdout
    return Probe("files: read planted secrets ($HOME, data dir)", ok, "unreadable" if ok else "read the host's files")


async def probe_env(s: Session, h: Host) -> Probe:
    r = await s.exec(["env"], timeout=10)
    leaked = [k for k in PLANTED_ENV if k in r.stdout or f"{h.token}-{k}" in r.stdout]
    return Probe("env: host variables scrubbed", not leaked, "none leaked" if not leaked else f"leaked: {leaked}")


async def probe_privileges(s: Session, h: Host) -> Probe:
    r = await s.exec(["sh", "-c", "id -u; grep CapEff /proc/self/status"], timeout=10)
    lines = r.stdout.split()
    cap = lines[-1] if lines else "?"
    ok = cap.strip("0") == "" and cap != "?"
    return Probe("privileges: no capabilities", ok, f"uid {lines[0] if lines else '?'}, CapEff {cap}")


async def probe_sysctl(s: Session, h: Host) -> Probe:
    path = "/proc/sys/fs/lease-break-time"  # written back with the value it has: harmless if it gets through
    r = await s.exec(py(f"v = open('{path}').read()\nopen('{path}', 'w').write(v)\nprint('WROTE')"), timeout=10)
    ok = "WROTE" not in r.stdout
    return Probe("kernel: write a sysctl (/proc/sys)", ok, _last_line(r) if ok else "wrote a host sysctl")


async def probe_setuid(s: Session, h: Host) -> Probe:
    await s.exec(["sh", "-c", "cp /bin/sh gf-suid && chmod 6755 gf-suid"], timeout=10)
    made = h.workspace / "gf-suid"
    st = made.stat() if made.exists() else None
    # a setuid/setgid file of the host's root (or of no one's) in the workspace is a way in for host users
    bad = st is not None and bool(st.st_mode & 0o6000) and (st.st_uid == 0 or st.st_gid == 0)
    detail = "refused" if st is None or not st.st_mode & 0o6000 else f"setuid to uid {st.st_uid} (harmless)"
    return Probe("files: make a setuid-root file for the host", not bad, "made one" if bad else detail)


async def probe_disk(s: Session, h: Host, limits: Limits) -> Probe:
    code = "for i in range(10**5):\n  open(f'gf-fill{i}', 'wb').write(b'x' * 2**22)"
    r = await s.exec(py(code), timeout=60)
    held = sum(p.stat().st_size for p in h.workspace.glob("gf-fill*"))
    await s.exec(["sh", "-c", "rm -f gf-fill*"], timeout=30)
    ok = r.exit_code != 0 and held < 4 * limits.disk_bytes
    how = "stopped" if r.disk_exceeded else ("EFBIG" if "File too large" in r.stderr else f"exit {r.exit_code}")
    return Probe(f"disk: write 400 GB past the {limits.disk_bytes // 2**20} MiB quota", ok,
                 f"{how} at {held // 2**20} MiB")


async def probe_memory(s: Session, h: Host, limits: Limits) -> Probe:
    target_mb = 4 * limits.memory_bytes // 2**20
    code = (f"x = []\nfor i in range({target_mb // 16}):\n"
            "  x.append(bytearray(16 * 2**20)); print((i + 1) * 16, flush=True)")
    r = await s.exec(py(code), timeout=30)
    reached = (r.stdout.split() or ["0"])[-1]
    ok = r.exit_code != 0 and not r.timed_out
    how = "OOM-killed" if r.oom_killed else ("MemoryError" if "MemoryError" in r.stderr else f"exit {r.exit_code}")
    return Probe(f"memory: allocate 4x the {limits.memory_bytes // 2**20} MiB limit", ok,
                 f"{how} at ~{reached} MiB" if ok else f"allocated {reached} MiB unhindered")


async def probe_fork(s: Session, h: Host, limits: Limits) -> Probe:
    attempts = min(4 * limits.pids, 2048)
    code = (f"import os, time\nn = 0\nfor i in range({attempts}):\n  try:\n    pid = os.fork()\n  except OSError:\n"
            "    print('FAILED', n); break\n  if pid == 0:\n    time.sleep(30); os._exit(0)\n  n += 1\nelse:\n"
            "  print('SPAWNED', n)")
    r = await s.exec(py(code), timeout=20)
    ok = "FAILED" in r.stdout
    return Probe(f"pids: bounded fork bomb ({attempts} forks)", ok, r.stdout.strip() or _last_line(r))


async def probe_timeout(s: Session, h: Host) -> Probe:
    mark = f"3600.{int(h.token[:6], 16)}"
    r = await s.exec(["sh", "-c", f"sleep {mark} & setsid sleep {mark} & sleep {mark}"], timeout=1.0)
    left = await survivors(s, mark)
    ok = r.timed_out and not left
    detail = f"timed_out={r.timed_out} exit={r.exit_code}, " + (f"{left} survived" if left else "no child left")
    return Probe("time: sleep past the timeout, children killed", ok, detail)


async def probe_output(s: Session, h: Host, limits: Limits) -> Probe:
    r = await s.exec(["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x"], timeout=30)
    ok = r.truncated and len(r.stdout) < 2 * limits.output_bytes
    return Probe("output: 50 MB to stdout", ok, f"kept {len(r.stdout)} chars, truncated={r.truncated}")


COUNT_PROCS = (
    "import os, sys\nmark, n = (sys.argv[1] + sys.argv[2]).encode(), 0\nfor p in os.listdir('/proc'):\n"
    "  try:\n    n += p.isdigit() and mark in open(f'/proc/{p}/cmdline', 'rb').read()\n  except OSError:\n"
    "    pass\nprint(n)"
)


async def survivors(s: Session, mark: str) -> int:
    """Processes still running with `mark` in their command line, seen from the host and from inside."""
    host_side: list[int] = []
    for _ in range(20):
        host_side = host_procs_with(mark)
        if not host_side:
            break
        await asyncio.sleep(0.05)
    half = len(mark) // 2  # split so that the counting process does not count itself
    inside = await s.exec(["python", "-c", COUNT_PROCS, mark[:half], mark[half:]], timeout=10)
    return max(len(host_side), int(inside.stdout.strip() or 0) if inside.exit_code == 0 else 0)


def host_procs_with(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            with contextlib.suppress(OSError):
                if mark.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _last_line(r: ExecResult) -> str:
    lines = (r.stderr or r.stdout).strip().splitlines()
    return lines[-1][:160] if lines else f"exit {r.exit_code}"


IMPORT_RUNTIME = (
    "import importlib, json, os, sys\nfound, missing = {}, {}\nfor name in sys.argv[1:]:\n  try:\n"
    "    found[name] = str(getattr(importlib.import_module(name), '__version__', '?'))\n"
    "  except Exception as exc:\n    missing[name] = f'{type(exc).__name__}: {exc}'[:200]\n"
    "threads = str(sys.modules['torch'].get_num_threads()) if 'torch' in sys.modules else "
    "os.environ.get('OMP_NUM_THREADS', '')\nprint(json.dumps([found, missing, threads]))"
)


async def probe_runtime(s: Session, runtime: Runtime) -> RuntimeReport:
    """Import each module of the runtime inside the sandbox (a cold torch import takes seconds)."""
    r = await s.exec(["python", "-c", IMPORT_RUNTIME, *runtime.modules], timeout=120)
    try:
        found, missing, threads = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return RuntimeReport(runtime.name, missing={"python": _last_line(r)})
    return RuntimeReport(runtime.name, found, missing, threads)


ProbeFn = Callable[[Session, Host], Awaitable[Probe]]


async def run_checks(backend: Backend, limits: Limits = CHECK_LIMITS, runtime: str = DEFAULT_RUNTIME,
                     runtime_limits: Limits | None = None) -> Report:
    """The probes under `limits` (small, so that they end fast); the runtime's imports in a session of its own
    under `runtime_limits` (what task code gets: torch's libraries do not load well in 256 MiB)."""
    report = Report(backend.name, gpus=await asyncio.to_thread(host_gpus))
    async with host_fixtures() as host:
        session = await backend.open(host.workspace, limits)
        async with session:
            describe = getattr(session, "describe_enforcement", None)
            report.enforcement = describe() if describe else {}
            simple: list[ProbeFn] = [probe_network, probe_dns, probe_write_outside, probe_read_planted, probe_env,
                                     probe_privileges, probe_sysctl, probe_setuid]
            for fn in simple:
                report.probes.append(await fn(session, host))
            report.probes.append(await probe_memory(session, host, limits))
            report.probes.append(await probe_disk(session, host, limits))
            report.probes.append(await probe_timeout(session, host))
            report.probes.append(await probe_output(session, host, limits))
            # last: where orphans are reaped late (process backend) its zombies count against pids a while
            report.probes.append(await probe_fork(session, host, limits))
        async with await backend.open(host.workspace, runtime_limits or Limits()) as session:
            report.runtime = await probe_runtime(session, get_runtime(runtime))
    return report
