"""Attacks by task code on the sandbox and its host, each contained: network out, host secrets and processes
through /proc, ptrace, kernel settings, setuid files, killing the parent, filling the disk, sleeping forever
with its output closed, and symlinks/FIFOs against put/get. Judged from the host side where possible.

The isolation attacks run on bwrap (the default backend); the limits and put/get also on the process
backend (no isolation by design, the same limits) and the docker one (through podman's API service, as in
test_sandbox.py, which covers the basic cases)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from sandbox import Limits, SandboxUnavailable, Session, get_backend
from sandbox.check import host_procs_with, survivors
from sandbox.disk import INODE_BYTES, usage, verdict
from tests.test_sandbox import docker_engine  # noqa: F401 - the fixture

MiB = 2**20
QUOTA = 64 * MiB
SLACK = 4  # how far past the quota a writer racing the watch may get (a shell makes ~30k files a second)
LIMITS = Limits(wall_time_s=20.0, memory_bytes=256 * MiB, cpus=1.0, pids=64, output_bytes=8 * 1024, disk_bytes=QUOTA)
ROOT = Path(__file__).resolve().parents[1]


async def open_session(name: str, ws: Path, limits: Limits = LIMITS) -> Session:
    ws.mkdir(exist_ok=True)
    return await get_backend(name, allow_process=True).open(ws, limits)


@pytest.fixture
async def bwrap(tmp_path: Path) -> AsyncIterator[Session]:
    s = await open_session("bwrap", tmp_path / "ws")
    try:
        yield s
    finally:
        await s.close()


async def _session(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[Session]:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
    s = await open_session(request.param, tmp_path / "ws")
    try:
        yield s
    finally:
        await s.close()


session = pytest.fixture(params=["bwrap", "process", "docker"])(_session)
local = pytest.fixture(params=["bwrap", "process"])(_session)  # those whose /tmp is a host directory


def py(code: str, *args: str) -> list[str]:
    return ["python", "-c", code, *args]


def held(s: Session) -> int:
    """Bytes the session keeps on the host: its workspace and its private dir (the bwrap sandbox's /tmp)."""
    return usage([s.workspace, *([s.private] if hasattr(s, "private") else [])])  # type: ignore[attr-defined]


# --- network ------------------------------------------------------------------------------------------

NET_OUT = """
import socket, sys
port, name = int(sys.argv[1]), sys.argv[2]
tries = {
    "tcp 127.0.0.1": lambda: socket.create_connection(("127.0.0.1", port), 2),
    "tcp ::1": lambda: socket.create_connection(("::1", port), 2),
    "tcp 1.1.1.1:443": lambda: socket.create_connection(("1.1.1.1", 443), 2),
    "udp 8.8.8.8:53": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
    "abstract unix": lambda: socket.socket(socket.AF_UNIX).connect("\\0" + name),
}
for what, attempt in tries.items():
    try:
        attempt()
        print("REACHED", what)
    except OSError as e:
        print("blocked", what, e.errno)
print(open("/proc/net/dev").read())
"""


async def test_network_out_is_unreachable_every_way(bwrap: Session) -> None:
    connections = 0

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    tcp = await asyncio.start_server(accepted, ["127.0.0.1", "::1"], 0)
    port = tcp.sockets[0].getsockname()[1]
    name = f"gf-attack-{secrets.token_hex(6)}"
    unix = await asyncio.start_unix_server(accepted, "\0" + name)
    try:
        r = await bwrap.exec(py(NET_OUT, str(port), name), timeout=30)
    finally:
        for server in (tcp, unix):
            server.close()
            await server.wait_closed()
    assert r.exit_code == 0, r.stderr
    assert "REACHED" not in r.stdout and r.stdout.count("blocked") == 5, r.stdout
    assert connections == 0
    interfaces = [line.split(":")[0].strip() for line in r.stdout.splitlines() if line.endswith(" 0") and ":" in line]
    assert interfaces == ["lo"]


# --- the host's secrets and processes -----------------------------------------------------------------

SCAN_PROC = """
import os, sys
token, host_pid = (sys.argv[1] + sys.argv[2]).encode(), int(sys.argv[3])  # split: not in its own cmdline
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
print("pids", len(pids), max(pids))
for p in pids:
    for f in ("environ", "cmdline"):
        try:
            if token in open(f"/proc/{p}/{f}", "rb").read():
                print("FOUND", p, f)
        except OSError:
            pass
for f in ("environ", "mem", "maps"):
    try:
        open(f"/proc/{host_pid}/{f}", "rb").read(1)
        print("OPENED", f)
    except OSError as e:
        print("denied", f, e.errno)
"""


async def test_host_processes_and_their_secrets_are_out_of_sight(bwrap: Session, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    token = secrets.token_hex(8)
    monkeypatch.setenv("GYMFORGE_ATTACK_SECRET", token)  # in this process's environment (its /proc/PID/environ)
    host = await asyncio.create_subprocess_exec("sleep", f"3600.{int(token[:6], 16)}",
                                                env={"SECRET": token})  # and in a host process's
    try:
        r = await bwrap.exec(py(SCAN_PROC, token[:8], token[8:], str(os.getpid())))
    finally:
        host.kill()
        await host.wait()
    assert r.exit_code == 0, r.stderr
    assert "FOUND" not in r.stdout and "OPENED" not in r.stdout, r.stdout
    count, highest = map(int, r.stdout.split()[1:3])
    assert count == highest == 2  # the sandbox's init (bwrap) and this python: nothing of the host's
    assert r.stdout.count("denied") == 3


async def test_files_the_host_keeps_are_not_in_the_sandbox(bwrap: Session, tmp_path: Path) -> None:
    r = await bwrap.exec(["sh", "-c", f"cat /etc/shadow; ls -A {ROOT}; ls /root; ls {tmp_path}"])
    assert r.exit_code != 0
    assert r.stdout.split() == [".venv"]  # of the project, only the runtime (read-only)
    assert "root:" not in r.stdout


PTRACE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
for name, pid in (("host", int(sys.argv[1])), ("launcher", int(sys.argv[2]))):
    for req in (PTRACE_ATTACH, PTRACE_SEIZE):
        rc = libc.ptrace(req, pid, 0, 0)
        print(name, req, rc, ctypes.get_errno())
"""


async def test_ptrace_cannot_reach_host_processes(bwrap: Session) -> None:
    launcher = bwrap.launcher.proc.pid  # type: ignore[attr-defined]
    r = await bwrap.exec(py(PTRACE, str(os.getpid()), str(launcher)))
    assert r.exit_code == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert len(rows) == 4
    assert all(rc == "-1" and int(err) == errno.ESRCH for _, _, rc, err in rows), r.stdout  # no such process
    assert (await bwrap.exec("echo alive")).stdout == "alive\n"


SYSCTL = """
import sys
for path in sys.argv[1:]:
    value = open(path).read()
    try:
        with open(path, "w") as f:
            f.write(value)  # the value it already has: harmless if it gets through
        print("WROTE", path)
    except OSError as e:
        print("denied", path, e.errno)
"""


async def test_kernel_settings_are_read_only(bwrap: Session) -> None:
    # the sandbox uid is the host's root in disguise: a writable /proc/sys would let it set e.g.
    # kernel.core_pattern, a program the host kernel runs as root
    paths = ["/proc/sys/kernel/core_pattern", "/proc/sys/fs/lease-break-time", "/proc/sys/vm/overcommit_memory"]
    before = [Path(p).read_text() for p in paths]
    r = await bwrap.exec(py(SYSCTL, *paths))
    assert "WROTE" not in r.stdout, r.stdout
    assert r.stdout.count(f" {errno.EROFS}\n") == len(paths), r.stdout + r.stderr
    assert [Path(p).read_text() for p in paths] == before


# --- setuid ---------------------------------------------------------------------------------------------

SETUID = """
import os, stat
os.system("cp /usr/bin/id id-copy")
attempts = {
    "chmod": lambda: os.chmod("id-copy", 0o4755),
    "chmod g+s": lambda: os.chmod("id-copy", 0o2755),
    "fchmod": lambda: os.fchmod(os.open("id-copy", os.O_RDONLY), 0o4755),
    "create 4755": lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o4755)),
    "mknod": lambda: os.mknod("node", stat.S_IFREG | 0o6755),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print("ALLOWED", name)
    except OSError as e:
        print("denied", name, e.errno)
for line in open("/proc/self/status"):
    if line.startswith("NoNewPrivs"):
        print(line.strip())
"""


async def test_no_setuid_file_can_be_made_for_the_host(bwrap: Session) -> None:
    ws: Path = bwrap.workspace  # type: ignore[attr-defined]
    r = await bwrap.exec(py(SETUID))
    assert r.exit_code == 0, r.stderr
    assert "ALLOWED" not in r.stdout and r.stdout.count(f" {errno.EPERM}\n") == 5, r.stdout
    assert "NoNewPrivs:\t1" in r.stdout.replace("NoNewPrivs: ", "NoNewPrivs:\t")
    suid = [p for p in ws.rglob("*") if p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID)]
    assert suid == []  # files made in the workspace are the host root's: none may be setuid/setgid
    sh = await bwrap.exec("cp /bin/sh ./sh && chmod u+s ./sh")
    assert sh.exit_code != 0 and not (ws / "sh").stat().st_mode & stat.S_ISUID
    mounts = (await bwrap.exec(["cat", "/proc/self/mountinfo"])).stdout.splitlines()
    for target in ("/gf/work", "/tmp"):
        line = next(m for m in mounts if m.split()[4] == target)
        assert "nosuid" in line.split()[5]


# --- killing the parent -------------------------------------------------------------------------------

async def test_killing_its_parents_leaves_the_host_and_the_session_alive(bwrap: Session) -> None:
    launcher = bwrap.launcher.proc  # type: ignore[attr-defined]
    attacks = [
        "kill -9 $PPID", "kill -9 1", f"kill -9 {os.getpid()}", f"kill -9 {launcher.pid}", f"kill -9 {os.getppid()}",
        "kill -9 -1",
        py(f"import os\nfor pid in range(1, {min(65536, int(Path('/proc/sys/kernel/pid_max').read_text()))}):\n"
           "  try:\n    pid != os.getpid() and os.kill(pid, 9)\n  except OSError:\n    pass"),
    ]
    for attack in attacks:
        await bwrap.exec(attack)
        assert launcher.returncode is None, attack
        assert (await bwrap.exec("echo alive")).stdout == "alive\n", attack
    assert os.getppid() != 1  # the process that started these tests lives on (its pid was a target)


async def test_killing_the_launcher_without_isolation_is_a_clean_error(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async with await open_session("process", tmp_path / "ws") as s:
        launcher = s.launcher.proc  # type: ignore[attr-defined]
        try:
            r = await s.exec("kill -9 $PPID; sleep 1; echo survived")  # without isolation the launcher is in reach
            assert r.stdout == "survived\n"
        except SandboxUnavailable as e:
            assert "launcher" in str(e)
        # it did die (its exit reaches asyncio's child watcher on its own schedule, maybe after the socket's EOF)
        assert await asyncio.wait_for(launcher.wait(), 10) is not None
        assert (await s.exec("echo alive")).stdout == "alive\n"  # and the next exec has a new one


# --- filling the disk -----------------------------------------------------------------------------------

WRITE_FILES = """
import os, sys
where, size = sys.argv[1], int(sys.argv[2])
where = where.replace("TMPDIR", os.environ["TMPDIR"])  # the process backend's /tmp is the host's: never there
os.makedirs(where, exist_ok=True)
for i in range(100_000):
    with open(f"{where}/f{i}", "wb") as f:
        f.write(b"x" * size)
print("WROTE EVERYTHING")
"""


async def test_one_file_past_the_quota_fails_cleanly(session: Session) -> None:
    r = await session.exec("head -c 200000000 /dev/zero > big")
    assert r.exit_code != 0 and not r.disk_exceeded and "File too large" in r.stderr, r
    assert QUOTA - MiB < (session.workspace / "big").stat().st_size <= QUOTA  # type: ignore[attr-defined]
    assert (await session.exec("rm big")).ok
    r = await session.exec(py("import os\nopen(os.environ['TMPDIR'] + '/big', 'wb').write(b'x' * 100 * 2**20)"))
    assert "OSError: [Errno 27] File too large" in r.stderr and not r.disk_exceeded, r
    assert held(session) <= QUOTA
    assert (await session.exec('rm "$TMPDIR/big"')).ok
    sparse = await session.exec(py("f = open('sparse', 'wb'); f.truncate(2**40)"))
    assert "File too large" in sparse.stderr and not sparse.disk_exceeded


async def test_many_files_past_the_quota_stop_the_exec(session: Session) -> None:
    await fill_until_stopped(session, "many")


async def test_many_files_in_tmp_past_the_quota_stop_the_exec(local: Session) -> None:
    await fill_until_stopped(local, "TMPDIR/many")


async def fill_until_stopped(session: Session, where: str) -> None:
    r = await session.exec(py(WRITE_FILES, where, str(4 * MiB)), timeout=60)
    assert r.disk_exceeded and not r.ok and "WROTE EVERYTHING" not in r.stdout, r
    assert "disk quota exceeded" in r.stderr
    # it tried to write 400 GB: stopped within a poll of the watch and a walk (~50 ms of writes here, more
    # on a loaded machine), the host did not fill
    assert held(session) < SLACK * QUOTA
    # the session lives on: over the quota, its writes fail (no room: EFBIG) or it is stopped again ...
    again = await session.exec(py(WRITE_FILES, where + "2", str(MiB)))
    assert not again.ok and (again.disk_exceeded or "File too large" in again.stderr), again
    assert held(session) < SLACK * QUOTA
    # ... but it may clean up, and then write again
    assert (await session.exec(f"rm -rf {where.replace('TMPDIR', '$TMPDIR')}*")).ok
    assert held(session) < MiB
    assert (await session.exec("echo x > small && cat small")).stdout == "x\n"


async def test_space_freed_elsewhere_does_not_hide_what_the_sandbox_writes(bwrap: Session, tmp_path: Path) -> None:
    ballast = tmp_path / "ballast"  # on the workspace's filesystem: freeing it offsets the sandbox's writes
    ballast.write_bytes(b"\0" * 8 * QUOTA)
    slow = "import time\nfor i in range(1000):\n  open(f'f{i}', 'wb').write(b'x' * 2**20)\n  time.sleep(0.01)"
    task = asyncio.create_task(bwrap.exec(py(slow), timeout=30))
    await asyncio.sleep(0.3)
    ballast.unlink()
    r = await task
    assert r.disk_exceeded, r
    assert held(bwrap) < SLACK * QUOTA


async def test_an_inode_bomb_is_stopped(session: Session) -> None:
    r = await session.exec("mkdir d && cd d && i=0; while [ $i -lt 1000000 ]; do : > $i; i=$((i+1)); done")
    assert r.disk_exceeded, r
    files = len(list((session.workspace / "d").iterdir()))  # type: ignore[attr-defined]
    assert QUOTA // INODE_BYTES // 2 < files < SLACK * QUOTA // INODE_BYTES  # of the million it tried


async def test_reserving_blocks_past_the_limits_is_refused(bwrap: Session) -> None:
    # fallocate(FALLOC_FL_KEEP_SIZE) takes blocks without growing the file: no RLIMIT_FSIZE check
    r = await bwrap.exec("touch r && fallocate --keep-size --length 1GiB r")
    assert r.exit_code != 0 and "unsupported" in r.stderr, r
    assert held(bwrap) < MiB
    code = "import os\nfd = os.open('p', os.O_CREAT | os.O_WRONLY)\nos.posix_fallocate(fd, 0, 4 * 2**20)\nprint('ok')"
    assert (await bwrap.exec(py(code))).stdout == "ok\n"  # glibc falls back to writing, within the limits


def test_the_quota_verdict() -> None:
    assert verdict(100, 10, before=50, now=90, free=1000) is None
    assert "quota exceeded" in (verdict(100, 10, before=50, now=101, free=1000) or "")
    assert verdict(100, 10, before=150, now=120, free=1000) is None  # over the quota but shrinking
    assert "nearly full" in (verdict(100, 10, before=50, now=60, free=5) or "")
    assert verdict(100, 10, before=50, now=50, free=5) is None  # the host is full, but not through this session


# --- sleeping forever with the output closed ------------------------------------------------------------

async def test_a_command_that_closes_its_output_and_sleeps_is_killed_at_the_timeout(session: Session) -> None:
    m = f"3600.{secrets.randbelow(10**9)}"
    start = asyncio.get_running_loop().time()
    r = await session.exec(f"exec >&- 2>&- </dev/null; setsid sleep {m} & sleep {m}", timeout=1.0)
    assert r.timed_out and r.exit_code == 124
    assert asyncio.get_running_loop().time() - start < 5
    assert await survivors(session, m) == 0 and host_procs_with(m) == []


async def test_a_detached_daemon_dies_with_the_exec(session: Session) -> None:
    m = f"3600.{secrets.randbelow(10**9)}"
    r = await session.exec(f"(setsid sh -c 'exec >&- 2>&- </dev/null; sleep {m}' &) ; echo started", timeout=10)
    assert r.ok and r.stdout == "started\n" and r.duration_s < 5
    assert await survivors(session, m) == 0 and host_procs_with(m) == []


# --- put / get ------------------------------------------------------------------------------------------

async def bounded(op: Awaitable[object], fifo: Path) -> object:
    """Run a put/get that must not block on a FIFO; if it does, unblock it (so the test ends) and fail."""
    task = asyncio.ensure_future(op)
    done, _ = await asyncio.wait([task], timeout=5)
    if not done:
        for flags in (os.O_RDONLY, os.O_WRONLY):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, flags | os.O_NONBLOCK))
        with contextlib.suppress(Exception):
            await task
        pytest.fail(f"put/get blocked on the FIFO {fifo.name}")
    return task.result()


async def test_put_and_get_resist_symlinks_and_fifos(session: Session, tmp_path: Path) -> None:
    ws: Path = session.workspace  # type: ignore[attr-defined]
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    for cmd in (f"ln -s {secret} link", f"ln -s {tmp_path} updir", "ln -s /proc/self/environ env",
                "mkfifo fifo", "mkdir -p sub && mkfifo sub/pipe", "ln -s link link2"):
        assert (await session.exec(cmd)).ok, cmd
    for path in ("link", "link2", "updir/host-secret.txt", "env"):
        with pytest.raises(OSError):
            await session.get(path)
        with pytest.raises(OSError):
            await session.put(path, b"planted")
    assert secret.read_text() == "host secret" and not (tmp_path / "planted").exists()
    for path in ("fifo", "sub/pipe"):
        with pytest.raises(OSError):
            await bounded(session.get(path), ws / path)
        with pytest.raises(OSError):
            await bounded(session.put(path, b"x" * 100_000), ws / path)
    await session.put("sub/ok.txt", b"fine")
    assert await session.get("sub/ok.txt") == b"fine"
    # a reader waiting on the FIFO does not make a put go through either
    reader = asyncio.create_task(session.exec("cat fifo", timeout=5))
    await asyncio.sleep(0.5)
    with pytest.raises(OSError):
        await bounded(session.put("fifo", b"x"), ws / "fifo")
    with contextlib.suppress(OSError):
        os.close(os.open(ws / "fifo", os.O_WRONLY | os.O_NONBLOCK))
    await reader
