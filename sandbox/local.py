"""What the bwrap and process backends share: a host workspace, per-session cgroups and a private temp
dir, exec through `run_process` under the session's disk quota, put/get straight into the workspace (never
through a symlink)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import ExecResult, Limits, Mount, base_env, merge_env, read_beneath, to_argv, write_beneath
from .disk import DiskQuota
from .limits import Cgroups, enforcement, rlimits_for
from .runner import Launcher, run_process


class LocalSession:
    """Base of the sessions that run host processes; subclasses say how an argv is wrapped."""

    workdir: str
    tmpdir: str = "/tmp"

    def __init__(self, workspace: Path, limits: Limits, mounts: Sequence[Mount], runtime_bin: str | None) -> None:
        self.workspace = workspace
        self.limits = limits
        self.mounts = tuple(mounts)
        self.runtime_bin = runtime_bin
        self.extra_env: dict[str, str] = {}  # a backend's own variables (e.g. its GPUs'), under the caller's
        self.cgroups = Cgroups()
        self.private = Path(tempfile.mkdtemp(prefix="gf-sandbox-"))
        self.launcher: Launcher | None = None
        self._active = 0
        self._closed = False
        self.last_walk_s: float | None = None  # how long the disk quota's last walk of the session took

    async def start(self) -> None:
        self.cgroups = await asyncio.to_thread(Cgroups.create, self.limits)
        await self._launcher()

    async def _launcher(self) -> Launcher:
        if self.launcher is None or not self.launcher.alive:
            rlimits = rlimits_for(self.limits, self.cgroups)
            self.launcher = await Launcher.start(self.cgroups.procs_files, rlimits, self.cwd())
        return self.launcher

    # subclasses
    def wrap(self, argv: list[str], mounts: Sequence[Mount]) -> list[str]:
        raise NotImplementedError

    def exec_fds(self) -> list[int]:
        """Fds an exec's process gets as 3, 4, ... (opened for each exec, closed after it)."""
        return []

    def cwd(self) -> str:
        """The launcher's working directory, which every exec's process starts in."""
        return str(self.private)

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ExecResult:
        if self._closed:
            raise RuntimeError("session is closed")
        base = base_env(self.limits, self.workdir, self.tmpdir, self.runtime_bin) | self.extra_env
        full_env = merge_env(base, env)
        argv = self.wrap(to_argv(command), mounts)
        launcher = await self._launcher()
        writable = [self.workspace, self.private, *(Path(m.host) for m in (*self.mounts, *mounts) if not m.read_only)]
        quota = DiskQuota(writable, self.limits.disk_bytes)
        room = await quota.measure(self.last_walk_s)
        self.last_walk_s = quota.took
        fds = self.exec_fds()
        self._active += 1
        try:
            return await run_process(
                launcher,
                argv,
                env=full_env,
                timeout=self.limits.wall_time_s if timeout is None else timeout,
                output_bytes=self.limits.output_bytes,
                cgroups=self.cgroups,
                extra_fds=fds,
                file_bytes=room,
                abort=quota.watch,
            )
        finally:
            for fd in fds:
                os.close(fd)
            self._active -= 1
            if not self._active and self.cgroups.members() - {launcher.proc.pid}:
                # whatever escaped the exec's process group (setsid) dies with the last running exec
                await asyncio.to_thread(self.cgroups.kill_except, {launcher.proc.pid})

    def describe_enforcement(self) -> dict[str, str]:
        """How each limit is enforced in this session (what `gymforge sandbox check` reports)."""
        return enforcement(self.cgroups)

    async def put(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(write_beneath, self.workspace, path, data)

    async def get(self, path: str) -> bytes:
        return await asyncio.to_thread(read_beneath, self.workspace, path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.launcher is not None:
            await self.launcher.close()
        await asyncio.to_thread(self.cgroups.remove)
        await asyncio.to_thread(shutil.rmtree, self.private, True)

    async def __aenter__(self) -> LocalSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def check_mounts(mounts: Sequence[Mount]) -> None:
    for m in mounts:
        if not Path(m.host).exists():
            raise FileNotFoundError(f"mount source does not exist: {m.host}")
