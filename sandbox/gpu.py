"""GPU pass-through: which NVIDIA GPUs a session may use (`Limits.gpus`, the setting `sandbox_gpus`) and
what each backend needs for it — bwrap the device nodes, /proc/driver/nvidia and the driver's user-space
libraries, docker a device request, every backend the variables CUDA reads. The discovery is a pure
function of a `GpuHost` (a /dev, a /proc and library directories), so a test can point it at a fake tree.

A choice is None (no GPU: the default), "all", or device indices "0,1": the N of /dev/nvidiaN, which is
nvidia-smi's index on the usual host (both follow the PCI bus order)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import SandboxUnavailable

ALL = "all"
# the driver's control nodes (nvidia-caps: MIG's); each is bound only where it exists
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps")
LIB_PATTERNS = ("libcuda.so*", "libnvidia-*.so*")  # libnvidia-ml, -ptxjitcompiler, -nvvm, ...
DEFAULT_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                    "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/run/opengl-driver/lib")
# where the dynamic loader looks anyway: driver libraries elsewhere go on LD_LIBRARY_PATH
LOADER_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
               "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
_INDEX = re.compile(r"\d{1,4}", re.ASCII)
_NODE = re.compile(r"nvidia(\d+)", re.ASCII)


def parse_gpus(value: object) -> str | None:
    """The normal form of a GPU choice: None (no GPU) for None or "", "all", or indices "0,1" (order kept)."""
    text = "" if value is None else str(value).strip().lower()
    if text in ("", ALL):
        return text or None
    parts = [p.strip() for p in text.split(",")]
    if not all(_INDEX.fullmatch(p) for p in parts):
        raise ValueError(f"GPUs must be 'all' or device indices like '0,1', not {value!r}")
    if len(set(map(int, parts))) != len(parts):
        raise ValueError(f"GPU indices must not repeat: {value!r}")
    return ",".join(str(int(p)) for p in parts)


def chosen(spec: object) -> tuple[int, ...] | None:
    """The chosen device indices: () for no GPU, None for all."""
    norm = parse_gpus(spec)
    if norm is None:
        return ()
    return None if norm == ALL else tuple(int(i) for i in norm.split(","))


def gpu_env(spec: object, *, renumbered: bool) -> dict[str, str]:
    """The variables of a session with these GPUs (none without). `renumbered`: the session sees only the
    chosen devices, which CUDA numbers from 0 (bwrap binds only their nodes; docker's device request does
    the same), so CUDA_VISIBLE_DEVICES counts from 0; else (process backend) they keep the host's indices.
    NVIDIA_VISIBLE_DEVICES always names the host's devices."""
    norm = parse_gpus(spec)
    if norm is None:
        return {}
    env = {"NVIDIA_VISIBLE_DEVICES": norm, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if norm != ALL:
        count = norm.count(",") + 1
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(count))) if renumbered else norm
    return env


def device_requests(spec: object) -> list[dict[str, Any]]:
    """The docker create request's DeviceRequests (as `docker run --gpus` sends them); [] for no GPU."""
    ids = chosen(spec)
    if ids == ():
        return []
    if ids is None:
        return [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}]
    return [{"Driver": "", "Count": 0, "DeviceIDs": [str(i) for i in ids], "Capabilities": [["gpu"]]}]


@dataclass(frozen=True)
class GpuHost:
    """Where a host's GPUs are found: device nodes, the driver's /proc entries, its user-space libraries."""

    dev_root: Path = Path("/dev")
    proc_root: Path = Path("/proc")
    lib_dirs: tuple[str, ...] = DEFAULT_LIB_DIRS

    def gpu_nodes(self) -> dict[int, Path]:
        """index -> /dev/nvidiaN, for every GPU node there is."""
        found: dict[int, Path] = {}
        with contextlib.suppress(OSError):
            for entry in self.dev_root.iterdir():
                m = _NODE.fullmatch(entry.name)
                if m:
                    found[int(m.group(1))] = entry
        return dict(sorted(found.items()))

    def driver_libs(self) -> list[Path]:
        """The driver's libraries (symlinks too, where they resolve), in lib_dirs order."""
        seen: dict[str, Path] = {}
        for d in self.lib_dirs:
            for pattern in LIB_PATTERNS:
                for lib in sorted(Path(d).glob(pattern)):
                    if lib.exists():
                        seen.setdefault(str(lib), lib)
        return list(seen.values())


def device_nodes(spec: object, host: GpuHost) -> list[Path]:
    """The control nodes that exist and the chosen GPUs' nodes; a chosen GPU without a node is an error."""
    ids, nodes = chosen(spec), host.gpu_nodes()
    if ids == ():
        return []
    if ids is None and not nodes:
        raise SandboxUnavailable(f"sandbox_gpus is 'all' but there is no {host.dev_root}/nvidia[0-9]* here: "
                                 "unset sandbox_gpus or install the NVIDIA driver")
    missing = [i for i in ids or () if i not in nodes]
    if missing:
        raise SandboxUnavailable(f"sandbox_gpus asks for GPU {missing[0]} but {host.dev_root}/nvidia{missing[0]} "
                                 f"does not exist (GPUs here: {', '.join(map(str, nodes)) or 'none'})")
    control = [host.dev_root / name for name in CONTROL_NODES if (host.dev_root / name).exists()]
    return control + [nodes[i] for i in (ids if ids is not None else nodes)]


def _under(path: Path, dirs: Sequence[str]) -> bool:
    return any(path.is_relative_to(d) for d in dirs)


def gpu_binds(spec: object, host: GpuHost | None = None, visible: Sequence[str] = ()) -> list[str]:
    """bwrap arguments giving a session these GPUs: each node with --dev-bind, /proc/driver/nvidia and the
    driver's libraries read-only (those not under `visible`, the directories the sandbox has anyway).
    They go after --dev and --proc (and after the private /tmp bind)."""
    host = host or GpuHost()
    nodes = device_nodes(spec, host)
    if not nodes:
        return []
    args: list[str] = []
    for node in nodes:
        args += ["--dev-bind", str(node), f"/dev/{node.name}"]
    proc = host.proc_root / "driver" / "nvidia"
    if proc.is_dir():
        args += ["--ro-bind", str(proc), "/proc/driver/nvidia"]
    for lib in host.driver_libs():
        if not _under(lib, visible):
            args += ["--ro-bind", str(lib), str(lib)]  # a symlink's target, as a file where the link was
    return args


def driver_lib_path(spec: object, host: GpuHost | None = None) -> dict[str, str]:
    """LD_LIBRARY_PATH for a session with GPUs whose driver libraries lie outside the loader's own
    directories (e.g. /usr/local/nvidia/lib64): the sandbox's environment has no host LD_LIBRARY_PATH."""
    if chosen(spec) == ():
        return {}
    dirs = dict.fromkeys(str(lib.parent) for lib in (host or GpuHost()).driver_libs())
    extra = [d for d in dirs if d not in LOADER_DIRS]
    return {"LD_LIBRARY_PATH": ":".join(extra)} if extra else {}


# --- what `gymforge sandbox check` reports -------------------------------------------------------------

@dataclass(frozen=True)
class HostGpus:
    count: int
    source: str  # "nvidia-smi -L", or the device nodes counted
    devices: tuple[str, ...]

    def describe(self) -> str:
        return "none" if not self.count else f"{self.count} ({self.source}): {'; '.join(self.devices)}"


def host_gpus(host: GpuHost | None = None, smi: str | None = "nvidia-smi") -> HostGpus:
    """The GPUs this host has: `nvidia-smi -L` where it runs, else its /dev/nvidia[0-9]* nodes."""
    host = host or GpuHost()
    listed = _smi_list(smi)
    if listed:
        return HostGpus(len(listed), "nvidia-smi -L", tuple(listed))
    nodes = host.gpu_nodes()
    return HostGpus(len(nodes), f"{host.dev_root}/nvidia[0-9]*", tuple(str(n) for n in nodes.values()))


def _smi_list(smi: str | None) -> list[str]:
    path = shutil.which(smi) if smi else None
    if not path:
        return []
    try:
        proc = subprocess.run([path, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("GPU ")] if proc.returncode == 0 else []
