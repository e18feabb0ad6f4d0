"""The sandbox interface: limits, mounts, results, the Session/Backend protocols, output truncation and
the scrubbed environment every backend starts task code with."""

from __future__ import annotations

import errno
import os
import shlex
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from .limits import thread_env

TIMEOUT_EXIT_CODE = 124  # what a timed-out exec reports, whichever backend killed it


class SandboxUnavailable(Exception):
    """The backend cannot run here; the message is one line saying how to fix it."""


@dataclass(frozen=True)
class Limits:
    wall_time_s: float = 60.0  # per exec, default
    memory_bytes: int = 2 * 1024**3
    cpus: float = 1.0
    pids: int = 256
    output_bytes: int = 64 * 1024  # stdout and stderr each: head + tail with a marker between
    network: bool = False
    disk_bytes: int = 8 * 1024**3  # what the workspace, /tmp and writable mounts may hold together
    gpus: str | None = None  # None: no GPU; "all" or device indices "0,1" (sandbox/gpu.py)
    thread_caps: bool = True  # thread pools sized to `cpus` (off: each library picks, usually one per host core)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str  # absolute path inside the sandbox, e.g. "/gf/raw", "/gf/hidden"
    read_only: bool = True

    def __post_init__(self) -> None:
        if not self.target.startswith("/") or ".." in self.target.split("/"):
            raise ValueError(f"mount target must be an absolute path without '..': {self.target!r}")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    oom_killed: bool
    truncated: bool
    disk_exceeded: bool = False  # stopped for writing past Limits.disk_bytes (or onto a nearly full host)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed and not self.disk_exceeded


@runtime_checkable
class Session(Protocol):
    workdir: str

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ExecResult: ...

    async def put(self, path: str, data: bytes) -> None: ...

    async def get(self, path: str) -> bytes: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Session: ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class Backend(Protocol):
    name: str

    async def open(self, workspace: Path, limits: Limits = DEFAULT_LIMITS, mounts: Sequence[Mount] = ()) -> Session: ...


class OutputBuffer:
    """Keeps the first and last `limit // 2` bytes of a stream and counts what was dropped between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail += chunk
        if len(self.tail) > 2 * self.tail_limit + 65536:
            self._trim()

    def _trim(self) -> None:
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    @property
    def truncated(self) -> bool:
        self._trim()
        return self.dropped > 0

    def text(self) -> str:
        self._trim()
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        marker = f"\n[... {self.dropped} bytes truncated ...]\n"
        return self.head.decode("utf-8", errors="replace") + marker + self.tail.decode("utf-8", errors="replace")


HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(limits: Limits, workdir: str, tmpdir: str = "/tmp", runtime_bin: str | None = None) -> dict[str, str]:
    """The scrubbed environment: nothing from the host leaks in, the task runtime's bin first on PATH,
    thread pools sized to the CPU limit."""
    path = f"{runtime_bin}:{HOST_PATH}" if runtime_bin else HOST_PATH
    return {
        "PATH": path,
        "HOME": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": tmpdir,
        "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **(thread_env(limits) if limits.thread_caps else {}),
    }


def merge_env(base: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(base)
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"invalid environment variable {key!r}")
        env[key] = value
    return env


def to_argv(command: str | Sequence[str]) -> list[str]:
    """A str runs under /bin/sh -c; a sequence runs as argv."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    argv = [str(a) for a in command]
    if not argv:
        raise ValueError("empty command")
    return argv


def describe(command: str | Sequence[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def exit_code_of(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def resolve_workspace(workspace: Path) -> Path:
    path = Path(workspace).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"workspace is not a directory: {path}")
    return path


# --- files in the workspace, never following a symlink out of it ------------------------------------

def _parts(path: str) -> list[str]:
    parts = [p for p in Path(path).parts if p not in ("", ".")]
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ValueError(f"path must be relative to the workspace, without '..': {path!r}")
    return parts


def _open_dir_beneath(root: Path, parts: list[str], create: bool, chown: tuple[int, int] | None = None) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in parts:
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    if chown:
                        os.chown(name, *chown, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_regular(name: str, flags: int, dir_fd: int) -> int:
    """Open a regular file only: O_NONBLOCK so that a FIFO task code left there cannot block the open (and
    with it the host), O_NOFOLLOW so that a symlink is not followed."""
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"not a regular file: {name!r}")
    os.set_blocking(fd, True)
    return fd


def write_beneath(root: Path, path: str, data: bytes, chown: tuple[int, int] | None = None) -> None:
    parts = _parts(path)
    dfd = _open_dir_beneath(root, parts[:-1], create=True, chown=chown)
    try:
        fd = _open_regular(parts[-1], os.O_WRONLY | os.O_CREAT, dfd)
        with os.fdopen(fd, "wb") as f:
            f.truncate()
            f.write(data)
            if chown:
                os.fchown(f.fileno(), *chown)
    finally:
        os.close(dfd)


def read_beneath(root: Path, path: str) -> bytes:
    parts = _parts(path)
    dfd = _open_dir_beneath(root, parts[:-1], create=False)
    try:
        fd = _open_regular(parts[-1], os.O_RDONLY, dfd)
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        return f.read()


S = TypeVar("S", bound="Session")


async def started(session: S) -> S:
    """Start a freshly made session; on failure close it (removing what it made) and re-raise."""
    try:
        await session.start()  # type: ignore[attr-defined]
    except BaseException:
        await session.close()
        raise
    return session
