"""The bwrap backend: every exec is a fresh bubblewrap with all namespaces unshared, a root made of only
the host paths task code needs (read-only), the workspace read-write at WORKDIR, a private /tmp."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .base import DEFAULT_LIMITS, Limits, Mount, SandboxUnavailable, resolve_workspace, started
from .gpu import GpuHost, driver_lib_path, gpu_binds, gpu_env
from .local import LocalSession, check_mounts
from .seccomp import filter_for

WORKDIR = "/gf/work"
SANDBOX_UID = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_PIECES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl/certs", "ca-certificates", "ca-certificates.conf",
    "alternatives", "localtime", "timezone", "fonts", "mime.types", "protocols", "services", "python3.11",
    "matplotlibrc",
)
PASSWD = "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:65534:65534:sandbox:{home}:/bin/sh\n"
GROUP = "root:x:0:\nsandbox:x:65534:\n"
HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n"


def runtime_prefixes() -> list[Path]:
    """The task runtime: this interpreter's venv and the base installation it points to."""
    found: list[Path] = []
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        path = Path(p).resolve()
        if any(path == f or path.is_relative_to(f) for f in found) or path.is_relative_to("/usr"):
            continue
        found = [f for f in found if not f.is_relative_to(path)] + [path]
    return found


def system_args() -> list[str]:
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for piece in ETC_PIECES:
        src = f"/etc/{piece}"
        if os.path.exists(src):
            args += ["--ro-bind", src, src]
    return args


def _resolver_args() -> list[str]:
    """Only with network=True: what name resolution reads."""
    args: list[str] = []
    for name in ("resolv.conf", "nsswitch.conf", "gai.conf"):
        src = os.path.realpath(f"/etc/{name}")
        if os.path.isfile(src):
            args += ["--ro-bind", src, f"/etc/{name}"]
    return args


def mount_args(mounts: Sequence[Mount]) -> list[str]:
    args: list[str] = []
    for m in sorted(mounts, key=lambda m: m.target.count("/")):
        args += ["--ro-bind" if m.read_only else "--bind", str(Path(m.host).resolve()), m.target]
    return args


class BwrapSession(LocalSession):
    workdir = WORKDIR

    def __init__(self, backend: BwrapBackend, workspace: Path, limits: Limits, mounts: Sequence[Mount]) -> None:
        # first: a GPU that is asked for and missing fails before anything is made
        self.gpu_args = gpu_binds(limits.gpus, backend.gpu_host, SYSTEM_DIRS)
        super().__init__(workspace, limits, mounts, runtime_bin=str(Path(sys.prefix) / "bin"))
        self.extra_env = gpu_env(limits.gpus, renumbered=True) | driver_lib_path(limits.gpus, backend.gpu_host)
        self.bwrap = backend.bwrap
        self.prefix_args = backend.prefix_args
        self._etc_args = self._write_etc()
        (self.private / "tmp").mkdir()
        (self.private / "tmp").chmod(0o1777)
        program = filter_for()
        self.seccomp: Path | None = None
        if program is not None:
            self.seccomp = self.private / "seccomp.bpf"
            self.seccomp.write_bytes(program)

    def _write_etc(self) -> list[str]:
        etc = self.private / "etc"
        etc.mkdir()
        args: list[str] = []
        for name, text in (("passwd", PASSWD.format(home=WORKDIR)), ("group", GROUP), ("hosts", HOSTS),
                           ("hostname", "sandbox\n")):
            (etc / name).write_text(text)
            args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        return args

    def exec_fds(self) -> list[int]:
        return [os.open(self.seccomp, os.O_RDONLY | os.O_CLOEXEC)] if self.seccomp else []

    def wrap(self, argv: list[str], mounts: Sequence[Mount]) -> list[str]:
        check_mounts(mounts)
        net = ["--share-net", *_resolver_args()] if self.limits.network else []
        seccomp = ["--seccomp", "3"] if self.seccomp else []  # exec_fds() is fd 3
        return [
            self.bwrap, "--unshare-all", *net, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox", *seccomp,
            # sysctls are the host's and the sandbox uid is root's: /proc/sys read-only, or it could set
            # e.g. kernel.core_pattern (a program the host kernel runs as root)
            "--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys",
            # the private /tmp first: the runtime binds after it, so a venv that lives under /tmp stays visible
            "--bind", str(self.private / "tmp"), "/tmp",
            *self.prefix_args, *self._etc_args,
            *self.gpu_args,  # device nodes over --dev's /dev, the driver's /proc and libraries: none by default
            "--bind", str(self.workspace), WORKDIR,
            *mount_args([*self.mounts, *mounts]),
            "--remount-ro", "/", "--chdir", WORKDIR, "--", *argv,
        ]


class BwrapBackend:
    name = "bwrap"

    def __init__(self, bwrap: str | None = None, gpu_host: GpuHost | None = None) -> None:
        found = bwrap or shutil.which("bwrap")
        if not found:
            raise SandboxUnavailable("bwrap not found: apt-get install bubblewrap (or set GYMFORGE_SANDBOX=docker)")
        self.bwrap = found
        self.gpu_host = gpu_host or GpuHost()
        self.prefix_args = system_args()
        for p in runtime_prefixes():
            self.prefix_args += ["--ro-bind", str(p), str(p)]
        self._probed = False

    async def _probe(self) -> None:
        """Fail once, clearly, where bwrap cannot make its namespaces (e.g. user namespaces disabled)."""
        if self._probed:
            return
        argv = [self.bwrap, "--unshare-all", "--die-with-parent", "--uid", str(SANDBOX_UID),
                *system_args(), "--", "/usr/bin/true"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
        _, err = await proc.communicate()
        if proc.returncode != 0:
            line = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SandboxUnavailable(
                f"bwrap cannot create its namespaces here ({line[0]}): enable user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1) or set GYMFORGE_SANDBOX=docker")
        self._probed = True

    async def open(self, workspace: Path, limits: Limits = DEFAULT_LIMITS, mounts: Sequence[Mount] = ()) -> BwrapSession:
        workspace = resolve_workspace(workspace)
        check_mounts(mounts)
        await self._probe()
        session = BwrapSession(self, workspace, limits, mounts)
        return await started(session)
