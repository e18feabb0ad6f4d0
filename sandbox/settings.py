"""The sandbox's settings: which backend runs task code and the limits every session gets by default.

The configuration (gymforge/config.py) fills this from the TOML file, the environment and flags; the
sandbox reads no environment variable of its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.base import Limits
from sandbox.gpu import DEFAULT_LIB_DIRS, parse_gpus
from sandbox.runtimes import Runtime, RuntimeName, get_runtime, image_tag

MIB = 1024**2


class SandboxSettings(BaseModel):
    backend: Literal["bwrap", "docker", "process"] = Field(
        "bwrap", alias="sandbox", description="bwrap, docker, or process (no isolation: needs allow_process)")
    allow_process: bool = Field(False, description="let the process backend run task code without isolation")
    runtime: RuntimeName = Field(
        "sklearn", alias="task_runtime",
        description="the packages task code may import: sklearn (numpy, pandas, scikit-learn, statsmodels) or torch (adds PyTorch)")
    image: str | None = Field(
        None, description="the docker backend's image (default: the task runtime's, gymforge-sandbox:latest or :torch)")
    memory_mb: int = Field(2048, ge=16, description="memory per session (rlimit or cgroup)")
    cpus: float = Field(1.0, gt=0, description="CPUs per session")
    pids: int = Field(256, ge=8, description="processes per session")
    disk_mb: int = Field(8192, ge=1, description="what the workspace, /tmp and writable mounts may hold together")
    output_kb: int = Field(64, ge=1, description="stdout and stderr kept per command, each (head + tail)")
    command_timeout_s: float = Field(60.0, gt=0, description="a command's wall time when its caller sets none")
    thread_caps: bool = Field(
        True, description="size task code's thread pools (OMP_NUM_THREADS, torch, BLAS) to the CPU limit")
    gpus: str | None = Field(None, description="GPUs a session may use: all, or device indices like 0,1 (unset: none)")
    gpu_lib_dirs: list[str] = Field(
        list(DEFAULT_LIB_DIRS), description="where the GPU driver's libraries are looked for (a ':'-separated list)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: object) -> str | None:
        return parse_gpus(value)

    @field_validator("gpu_lib_dirs", mode="before")
    @classmethod
    def _lib_dirs(cls, value: object) -> object:
        dirs = [d for d in value.split(":") if d] if isinstance(value, str) else value
        if isinstance(dirs, list | tuple) and not all(isinstance(d, str) and d.startswith("/") for d in dirs):
            raise ValueError(f"library directories must be absolute paths: {value!r}")
        return dirs

    @property
    def task_runtime(self) -> Runtime:
        return get_runtime(self.runtime)

    @property
    def docker_image(self) -> str:
        return self.image or image_tag(self.task_runtime)

    def limits(self, wall_time_s: float | None = None) -> Limits:
        """Session limits from these settings; `wall_time_s` overrides the default per-command wall time."""
        return Limits(wall_time_s=wall_time_s or self.command_timeout_s, memory_bytes=self.memory_mb * MIB,
                      cpus=self.cpus, pids=self.pids, output_bytes=self.output_kb * 1024,
                      disk_bytes=self.disk_mb * MIB, gpus=self.gpus, thread_caps=self.thread_caps)
