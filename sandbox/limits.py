"""Resource limits for sandboxed processes: cgroup v1 (memory, pids, cpu) where this process may make
child cgroups under its own, and rlimits as the fallback. What is enforced is reported, not assumed."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import resource
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # base.py imports thread_env from here: no import of base at run time
    from .base import Limits

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
PREFIX = "gymforge-"
CFS_PERIOD_US = 100_000
# the thread-pool sizes numerical libraries read (OpenMP, MKL, OpenBLAS, numexpr, Accelerate); the last is
# PyTorch's by convention (torch reads OMP_NUM_THREADS itself): harmless where nothing reads it
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "TORCH_NUM_THREADS")


def thread_cap(limits: Limits) -> int:
    """A session's thread-pool size: its CPU limit rounded up, at least 1 (0.5 CPU -> 1, 2 -> 2, 2.5 -> 3)."""
    return max(1, math.ceil(limits.cpus))


def thread_env(limits: Limits) -> dict[str, str]:
    """Every thread-count variable set to the session's CPU limit, so that concurrent episodes running
    BLAS, OpenMP or PyTorch code do not each start a thread per host core and thrash."""
    return dict.fromkeys(THREAD_VARS, str(thread_cap(limits)))


def _mountpoints() -> dict[str, tuple[Path, str]]:
    """controller -> (mount point, root of that mount) for every cgroup v1 hierarchy."""
    found: dict[str, tuple[Path, str]] = {}
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post_fields = pre.split(), post.split()
            if len(post_fields) < 3 or post_fields[0] != "cgroup":
                continue
            for opt in post_fields[2].split(","):
                if opt in CONTROLLERS:
                    found[opt] = (Path(fields[4]), fields[3])
    return found


def own_cgroup_paths() -> dict[str, str]:
    """controller -> this process's cgroup v1 path for it (as in /proc/self/cgroup)."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(","):
                if ctrl in CONTROLLERS:
                    paths[ctrl] = path
    return paths


def own_cgroup_dirs() -> dict[str, Path]:
    """controller -> the directory of this process's own cgroup v1 for it."""
    mounts = _mountpoints()
    dirs: dict[str, Path] = {}
    for ctrl, path in own_cgroup_paths().items():
        if ctrl in mounts:
            mnt, root = mounts[ctrl]
            rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
            dirs[ctrl] = (mnt / rel).resolve() if rel != "." else mnt
    return dirs


def _write(path: Path, value: str | int) -> None:
    path.write_text(str(value))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Cgroups:
    """One session's cgroups: a directory per usable controller, limits written, removed on close."""

    dirs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, limits: Limits, wanted: tuple[str, ...] = CONTROLLERS) -> Cgroups:
        name = f"{PREFIX}{_pidns()}-{os.getpid()}-{secrets.token_hex(4)}"
        made = cls()
        for ctrl, parent in own_cgroup_dirs().items():
            if ctrl not in wanted:
                continue
            _sweep_stale(parent)
            path = parent / name
            try:
                path.mkdir()
                _apply(ctrl, path, limits)
            except OSError as e:
                log.debug("cgroup %s unusable: %s", ctrl, e)
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            made.dirs[ctrl] = path
        return made

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def members(self) -> set[int]:
        """Every process in the session's cgroups (a few small reads: cheap enough for the event loop)."""
        return set().union(*(_members(d) for d in self.dirs.values()))

    def kill_except(self, keep: set[int], rounds: int = 50) -> None:
        """SIGKILL every process in the session's cgroups but `keep` (what an exec left behind)."""
        for _ in range(rounds):
            pids = self.members() - keep
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)

    def oom_kills(self) -> int:
        """How many processes the memory controller has OOM-killed in this cgroup so far."""
        d = self.dirs.get("memory")
        if d is None:
            return 0
        with contextlib.suppress(OSError):
            m = re.search(rb"^oom_kill (\d+)$", read_small(str(d / "memory.oom_control")), re.M)
            if m:
                return int(m.group(1))
        return 0

    def remove(self) -> None:
        """Kill whatever is left in the session's cgroups, then remove them."""
        for d in self.dirs.values():
            remove_cgroup(d)
        self.dirs.clear()


def _members(path: Path) -> set[int]:
    """The pids in a cgroup and its descendants (os.scandir, read_small: this runs after every exec)."""
    found: set[int] = set()
    stack = [str(path)]
    while stack:
        top = stack.pop()
        with contextlib.suppress(OSError):
            found.update(int(p) for p in read_small(os.path.join(top, "cgroup.procs")).split())
        with contextlib.suppress(OSError), os.scandir(top) as entries:
            stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    return found


def read_small(path: str) -> bytes:
    """A cgroup file's bytes with os.open/os.read: these are read on every exec, at a third of pathlib's cost."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove_cgroup(path: Path, rounds: int = 200) -> None:
    """SIGKILL every process in `path` and below until none is left, then rmdir it (leaves first)."""
    for _ in range(rounds):
        pids = _members(path)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [path]:
        for _ in range(100):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.005)


def _apply(ctrl: str, path: Path, limits: Limits) -> None:
    if ctrl == "memory":
        _write(path / "memory.limit_in_bytes", limits.memory_bytes)
        swap = path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            _write(swap, limits.memory_bytes)
    elif ctrl == "pids":
        _write(path / "pids.max", limits.pids)
    elif ctrl == "cpu":
        _write(path / "cpu.cfs_period_us", CFS_PERIOD_US)
        _write(path / "cpu.cfs_quota_us", max(1000, int(limits.cpus * CFS_PERIOD_US)))


def _pidns() -> str:
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        return "0"


def _sweep_stale(parent: Path) -> None:
    """Remove empty cgroups left by gymforge processes (of this pid namespace) that died without closing."""
    pattern = re.compile(rf"{PREFIX}{_pidns()}-(\d+)-[0-9a-f]+")
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and not _pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    entry.rmdir()


# --- rlimits -----------------------------------------------------------------------------------------

def rlimits_for(limits: Limits, cgroups: Cgroups) -> list[tuple[int, int]]:
    """rlimits applied to every sandboxed process; memory and pids only where no cgroup enforces them. No
    file may outgrow the disk quota: a write past it fails with EFBIG (the launcher ignores SIGXFSZ, and
    so do the processes it starts)."""
    rl = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, limits.disk_bytes)]
    if "memory" not in cgroups.dirs:
        rl.append((resource.RLIMIT_AS, limits.memory_bytes))
    if "pids" not in cgroups.dirs:
        rl.append((resource.RLIMIT_NPROC, limits.pids))
    return rl


def preexec(procs: list[str], rlimits: list[tuple[int, int]]) -> Callable[[], None]:
    """The function run in the child between fork and exec: join the cgroups, then lower rlimits."""

    def _child() -> None:
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        for res, value in rlimits:
            _, hard = resource.getrlimit(res)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(res, (value, value))

    return _child


def enforcement(cgroups: Cgroups) -> dict[str, str]:
    """How each limit is enforced for a session with these cgroups (for `sandbox check`)."""
    d = cgroups.dirs
    return {
        "memory": "cgroup v1 memory.limit_in_bytes (whole session, OOM kill)"
        if "memory" in d
        else "rlimit RLIMIT_AS (per process: allocation fails with MemoryError)",
        "pids": "cgroup v1 pids.max (whole session)"
        if "pids" in d
        else "rlimit RLIMIT_NPROC only (not enforced when the sandbox uid maps to root) + wall-time kill",
        "cpu": "cgroup v1 cpu.cfs_quota_us" if "cpu" in d else "not enforced (thread-count variables only)",
    }
