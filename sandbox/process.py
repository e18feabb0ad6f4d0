"""The process backend: NO isolation (task code sees the host's files and network). Only for development
where neither bwrap nor a container engine exists, and only when asked for explicitly. It still applies
the timeout (process group kill), cgroups or rlimits, output truncation and the scrubbed environment."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .base import DEFAULT_LIMITS, Limits, Mount, SandboxUnavailable, resolve_workspace, started
from .gpu import GpuHost, driver_lib_path, gpu_env
from .local import LocalSession

log = logging.getLogger(__name__)
ALLOW_ENV = "GYMFORGE_SANDBOX_ALLOW_PROCESS"


class ProcessSession(LocalSession):
    def __init__(self, workspace: Path, limits: Limits, gpu_host: GpuHost | None = None) -> None:
        super().__init__(workspace, limits, (), runtime_bin=str(Path(sys.prefix) / "bin"))
        self.workdir = str(workspace)
        self.tmpdir = str(self.private)
        # no isolation: the host's GPUs are all reachable; the variables say which ones to use
        self.extra_env = gpu_env(limits.gpus, renumbered=False) | driver_lib_path(limits.gpus, gpu_host)

    def wrap(self, argv: list[str], mounts: Sequence[Mount]) -> list[str]:
        if mounts:
            raise SandboxUnavailable(_NO_MOUNTS)
        return argv

    def cwd(self) -> str:
        return self.workdir


_NO_MOUNTS = "the process backend cannot mount paths into a sandbox: use GYMFORGE_SANDBOX=bwrap or docker"


class ProcessBackend:
    name = "process"

    def __init__(self, allow: bool = False, gpu_host: GpuHost | None = None) -> None:
        if not allow:
            raise SandboxUnavailable(
                f"the process backend has no isolation and is off: set {ALLOW_ENV}=1 to use it anyway")
        self.gpu_host = gpu_host or GpuHost()

    async def open(self, workspace: Path, limits: Limits = DEFAULT_LIMITS, mounts: Sequence[Mount] = ()) -> ProcessSession:
        if mounts:
            raise SandboxUnavailable(_NO_MOUNTS)
        workspace = resolve_workspace(workspace)
        log.warning("sandbox backend 'process': task code runs WITHOUT isolation in %s", workspace)
        session = ProcessSession(workspace, limits, self.gpu_host)
        return await started(session)
