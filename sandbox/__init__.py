"""Runs untrusted, model-written task code: one async session interface over three backends."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .base import Backend, ExecResult, Limits, Mount, SandboxUnavailable, Session
from .settings import SandboxSettings

BACKENDS = ("bwrap", "docker", "process")


def default_backend_name() -> str:
    return "bwrap" if sys.platform.startswith("linux") else "docker"


def get_backend(name: str | None = None, *, allow_process: bool = False, image: str | None = None,
                gpu_lib_dirs: Sequence[str] | None = None) -> Backend:
    """The named backend (default: bwrap on Linux, docker elsewhere). The process backend runs task code
    without isolation and refuses unless `allow_process`; `image` is the docker backend's; `gpu_lib_dirs`
    where the host backends look for the GPU driver's libraries (a session gets GPUs by `Limits.gpus`)."""
    from .gpu import GpuHost

    name = (name or default_backend_name()).strip().lower()
    host = GpuHost(lib_dirs=tuple(gpu_lib_dirs)) if gpu_lib_dirs is not None else GpuHost()
    if name == "bwrap":
        from .bwrap import BwrapBackend

        return BwrapBackend(gpu_host=host)
    if name == "docker":
        from .docker_backend import DockerBackend

        return DockerBackend(image)
    if name == "process":
        from .process import ProcessBackend

        return ProcessBackend(allow_process, gpu_host=host)
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}: choose one of {', '.join(BACKENDS)}")


def backend_for(settings: SandboxSettings) -> Backend:
    return get_backend(settings.backend, allow_process=settings.allow_process, image=settings.docker_image,
                       gpu_lib_dirs=settings.gpu_lib_dirs)


__all__ = [
    "BACKENDS",
    "Backend",
    "ExecResult",
    "Limits",
    "Mount",
    "SandboxSettings",
    "SandboxUnavailable",
    "Session",
    "backend_for",
    "get_backend",
]
