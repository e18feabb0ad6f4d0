"""Runs untrusted, model-written task code: one async session interface over three backends."""

from __future__ import annotations

import sys

from .base import Backend, ExecResult, Limits, Mount, SandboxUnavailable, Session
from .settings import SandboxSettings

BACKENDS = ("bwrap", "docker", "process")


def default_backend_name() -> str:
    return "bwrap" if sys.platform.startswith("linux") else "docker"


def get_backend(name: str | None = None, *, allow_process: bool = False, image: str | None = None) -> Backend:
    """The named backend (default: bwrap on Linux, docker elsewhere). The process backend runs task code
    without isolation and refuses unless `allow_process`; `image` is the docker backend's."""
    name = (name or default_backend_name()).strip().lower()
    if name == "bwrap":
        from .bwrap import BwrapBackend

        return BwrapBackend()
    if name == "docker":
        from .docker_backend import DockerBackend

        return DockerBackend(image)
    if name == "process":
        from .process import ProcessBackend

        return ProcessBackend(allow_process)
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}: choose one of {', '.join(BACKENDS)}")


def backend_for(settings: SandboxSettings) -> Backend:
    return get_backend(settings.backend, allow_process=settings.allow_process, image=settings.image)


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
