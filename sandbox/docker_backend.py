"""The docker backend: one container per session (Docker, or podman's Docker-compatible API service) with
memory/CPU/pids limits, no network, a read-only root, the workspace bind-mounted read-write (under the disk
quota, see disk.py), a tmpfs /tmp.
Each exec is one `exec` in it as uid 65534 under `timeout -s KILL`; afterwards every process of that uid
left in the container is killed (so execs in one session's container run one at a time). An exec with
extra mounts runs in a short-lived second container sharing the workspace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import (
    DEFAULT_LIMITS,
    TIMEOUT_EXIT_CODE,
    ExecResult,
    Limits,
    Mount,
    OutputBuffer,
    SandboxUnavailable,
    base_env,
    merge_env,
    read_beneath,
    resolve_workspace,
    started,
    to_argv,
    write_beneath,
)
from .disk import DiskQuota
from .gpu import device_requests, gpu_env
from .image import DEFAULT_IMAGE
from .limits import own_cgroup_paths
from .local import check_mounts

log = logging.getLogger(__name__)

WORKDIR = "/gf/work"
USER = (65534, 65534)
RUNTIME_BIN = "/opt/gf/bin"
GRACE_S = 15.0  # how long past the in-container timeout before the engine call itself is given up
# Run "$@" under `timeout -s KILL`, then kill every other process this uid has in the container (kill -1
# spares the caller and pid 1; the main process runs as root): nothing the command started survives it.
# No file it writes may grow past $2 blocks of 512 bytes (the room left in the disk quota; soft = hard
# limit), and such a write fails with EFBIG rather than killing the writer (SIGXFSZ ignored, inherited).
WRAPPER = (
    't=$1; ulimit -f "$2"; trap "" XFSZ; shift 2; timeout -s KILL "$t" "$@" & p=$!; wait $p; rc=$?; '
    'i=0; while [ $i -lt 100 ] && kill -s KILL -- -1 2>/dev/null; do i=$((i+1)); done; exit $rc'
)


def _docker() -> Any:
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a project dependency
        raise SandboxUnavailable("the docker SDK is missing: pip install docker") from e
    return docker


def connect() -> Any:
    """A client for $DOCKER_HOST (or the default socket); SandboxUnavailable when no engine answers."""
    docker = _docker()
    where = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        # a fixed API version: negotiating it costs a /version call, which podman answers slowly (~1 s)
        client = docker.from_env(timeout=120, version=os.environ.get("DOCKER_API_VERSION", "1.41"))
        client.ping()
    except Exception as e:
        raise SandboxUnavailable(
            f"no Docker-API engine at {where} ({type(e).__name__}): start docker, or podman's API with "
            "`gymforge sandbox podman-service` and export the DOCKER_HOST it prints"
        ) from None
    return client


def cgroup_parent_for(client: Any) -> str | None:
    """For a local podman (cgroupfs manager): this process's own memory cgroup, so the containers are
    accounted (and limited) under it rather than beside it. Docker's systemd driver wants a slice: None."""
    path = own_cgroup_paths().get("memory")
    if not path or path == "/" or not str(client.api.base_url).startswith("http+docker://localhost"):
        return None
    with contextlib.suppress(Exception):
        if "Libpod-Api-Version" in client.api._get(client.api._url("/_ping")).headers:
            return path
    return None


def _is_local(client: Any) -> bool:
    """Whether the engine runs on this host (its containers' processes are this host's)."""
    return str(client.api.base_url).startswith("http+docker://localhost")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _uid_of(pid: int) -> int | None:
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _volumes(workspace: Path, mounts: Iterable[Mount]) -> dict[str, dict[str, str]]:
    vols = {str(workspace): {"bind": WORKDIR, "mode": "rw"}}
    for m in mounts:
        vols[str(Path(m.host).resolve())] = {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
    return vols


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """The container user must own the workspace to write in it (there is no user-namespace remap)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(path, uid, gid)


def _own_writable(mounts: Iterable[Mount]) -> None:
    for m in mounts:
        if not m.read_only:
            _chown_tree(Path(m.host), *USER)


class DockerSession:
    workdir = WORKDIR

    def __init__(self, client: Any, image: str, workspace: Path, limits: Limits, mounts: Sequence[Mount]) -> None:
        self.client = client
        self.image = image
        self.workspace = workspace
        self.limits = limits
        self.mounts = tuple(mounts)
        self.container: Any = None
        # the engine's device request exposes only the chosen GPUs, numbered from 0 in the container
        self.env = base_env(limits, WORKDIR, "/tmp", RUNTIME_BIN) | gpu_env(limits.gpus, renumbered=True)
        self._lock = asyncio.Lock()  # one exec at a time in the session container (see WRAPPER)
        self.cgroup_parent: str | None = None
        self._sides: set[Any] = set()  # the side containers of running execs with extra mounts
        self._cgroup: Path | None = None

    def _run_kwargs(self, mounts: Sequence[Mount]) -> dict[str, Any]:
        lim = self.limits
        kwargs: dict[str, Any] = dict(
            image=self.image, detach=True, working_dir=WORKDIR, hostname="sandbox",
            network_mode="bridge" if lim.network else "none", read_only=True,
            mem_limit=lim.memory_bytes, memswap_limit=lim.memory_bytes, nano_cpus=int(lim.cpus * 1e9),
            pids_limit=lim.pids, tmpfs={"/tmp": f"rw,nosuid,nodev,size={lim.memory_bytes},mode=1777"},
            volumes=_volumes(self.workspace, [*self.mounts, *mounts]), cap_drop=["ALL"],
            security_opt=["no-new-privileges"], environment=self.env, labels={"gymforge.sandbox": "1"},
        )
        if self.cgroup_parent:
            kwargs["cgroup_parent"] = self.cgroup_parent
        gpus = device_requests(lim.gpus)
        if gpus:
            kwargs["device_requests"] = gpus
        return kwargs

    async def start(self) -> None:
        # the main process runs as root (capabilities dropped) so task code, as uid 65534, cannot kill it
        try:
            self.container = await asyncio.to_thread(
                self.client.containers.run, command=["sleep", "infinity"], user="0:0", init=True,
                **self._run_kwargs(()))
        except _docker().errors.APIError as e:
            first = str(e.explanation or e).strip().splitlines()[0][:200]
            raise SandboxUnavailable(f"cannot start a sandbox container on the engine: {first}") from None

    # --- exec ----------------------------------------------------------------------------------------
    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ExecResult:
        if self.container is None:
            raise RuntimeError("session is closed")
        check_mounts(mounts)
        await asyncio.to_thread(_own_writable, mounts)
        limit = self.limits.wall_time_s if timeout is None else timeout
        # the container's /tmp is a tmpfs within the memory limit: the quota is on the host's directories
        writable = [self.workspace, *(Path(m.host) for m in (*self.mounts, *mounts) if not m.read_only)]
        quota = DiskQuota(writable, self.limits.disk_bytes)
        room = await quota.measure()
        argv = ["/bin/sh", "-c", WRAPPER, "gf-exec", f"{max(limit, 0.01):.3f}", str(room // 512), *to_argv(command)]
        full_env = merge_env(self.env, env)
        if mounts:
            return await self._timed(self._exec_side_container, argv, full_env, mounts, limit, quota)
        async with self._lock:
            return await self._timed(self._exec_in_container, argv, full_env, mounts, limit, quota)

    async def _timed(self, run: Any, argv: list[str], full_env: dict[str, str], mounts: Sequence[Mount],
                     limit: float, quota: DiskQuota) -> ExecResult:
        out, err = OutputBuffer(self.limits.output_bytes), OutputBuffer(self.limits.output_bytes)
        oom_before = -1 if mounts else await asyncio.to_thread(self._oom_kills)
        start = time.monotonic()
        running = asyncio.ensure_future(asyncio.wait_for(
            asyncio.to_thread(run, argv, full_env, mounts, limit, out, err), limit + GRACE_S))
        watch = asyncio.ensure_future(quota.watch())
        stopped: str | None = None
        try:
            await asyncio.wait([running, watch], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                stopped = watch.result()
                await asyncio.to_thread(self._stop_everything)
            code = await running
        except TimeoutError:
            code = None  # the engine did not return: treat as a timeout
            await asyncio.to_thread(self._kill_user_processes)
        except asyncio.CancelledError:
            running.cancel()
            await asyncio.shield(asyncio.to_thread(self._stop_everything))
            raise
        finally:
            watch.cancel()
        duration = time.monotonic() - start
        timed_out = stopped is None and (code is None or (code in (124, 137) and duration >= limit))
        oom = oom_before >= 0 and not timed_out and await asyncio.to_thread(self._oom_kills) > oom_before
        if not timed_out and code == 137 and oom_before < 0 and stopped is None:
            oom = True  # no counter readable: a SIGKILL nobody timed is the OOM killer's
        if stopped:
            err.feed(f"\nsandbox: killed: {stopped}\n".encode())
        return ExecResult(
            exit_code=TIMEOUT_EXIT_CODE if timed_out else int(code or 0), stdout=out.text(), stderr=err.text(),
            duration_s=duration, timed_out=timed_out, oom_killed=oom, truncated=out.truncated or err.truncated,
            disk_exceeded=stopped is not None)

    def _exec_in_container(self, argv: list[str], env: dict[str, str], mounts: Sequence[Mount], limit: float,
                           out: OutputBuffer, err: OutputBuffer) -> int:
        self._ensure_running()
        api = self.client.api
        eid = api.exec_create(self.container.id, argv, stdout=True, stderr=True, environment=env,
                              workdir=WORKDIR, user=f"{USER[0]}:{USER[1]}")["Id"]
        for o, e in api.exec_start(eid, stream=True, demux=True):
            if o:
                out.feed(o)
            if e:
                err.feed(e)
        return int(api.exec_inspect(eid).get("ExitCode") or 0)

    def _exec_side_container(self, argv: list[str], env: dict[str, str], mounts: Sequence[Mount], limit: float,
                             out: OutputBuffer, err: OutputBuffer) -> int:
        kwargs = self._run_kwargs(mounts)
        kwargs["environment"] = env
        ctr = self.client.containers.run(command=argv, user=f"{USER[0]}:{USER[1]}", **kwargs)
        self._sides.add(ctr)
        try:
            try:
                code = int(ctr.wait(timeout=limit + GRACE_S).get("StatusCode", 0))
            except Exception:  # podman: a wait timeout surfaces as a requests ConnectionError
                with contextlib.suppress(Exception):
                    ctr.kill()
                code = 137
            for stream, buf in (("stdout", out), ("stderr", err)):
                for chunk in ctr.logs(stdout=stream == "stdout", stderr=stream == "stderr", stream=True):
                    buf.feed(chunk)
            return code
        finally:
            self._sides.discard(ctr)
            with contextlib.suppress(Exception):
                ctr.remove(force=True)

    def _stop_everything(self) -> None:
        """Kill what task code runs: its processes in the session container, and the side containers."""
        self._kill_from_host()
        for ctr in list(self._sides):
            with contextlib.suppress(Exception):
                ctr.kill()
        self._kill_user_processes()

    def _kill_user_processes(self) -> None:
        with contextlib.suppress(Exception):
            self.container.exec_run(["sh", "-c", "kill -s KILL -- -1"], user=f"{USER[0]}:{USER[1]}")

    def _ensure_running(self) -> None:
        self.container.reload()
        if self.container.status != "running":
            log.warning("sandbox container %s was %s; restarting it", self.container.short_id, self.container.status)
            self.container.start()
            self._cgroup = None

    def _memory_cgroup(self) -> Path | None:
        """The session container's memory cgroup (v1) directory on this host, where it can be seen."""
        if self._cgroup is None:
            with contextlib.suppress(Exception):
                pid = int(self.client.api.inspect_container(self.container.id)["State"]["Pid"])
                with open(f"/proc/{pid}/cgroup") as f:
                    path = next(line.split(":", 2)[2].strip() for line in f if re.search(r":memory(,|:)", line))
                if Path(f"/sys/fs/cgroup/memory{path}/cgroup.procs").exists():
                    self._cgroup = Path(f"/sys/fs/cgroup/memory{path}")
        return self._cgroup

    def _kill_from_host(self) -> None:
        """SIGKILL the task code's processes (uid USER) in the session container straight from the host:
        much sooner than an exec through the engine's API."""
        cgroup = self._memory_cgroup()
        if cgroup is None or not _is_local(self.client):
            return
        for _ in range(20):
            pids = {int(p) for procs in cgroup.rglob("cgroup.procs") for p in _read(procs).split()}
            mine = [p for p in pids if _uid_of(p) == USER[0]]
            if not mine:
                return
            for p in mine:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.005)

    def _oom_kills(self) -> int:
        """The session container's memory cgroup OOM-kill count, or -1 where it cannot be read."""
        with contextlib.suppress(Exception):
            text = (self._memory_cgroup() / "memory.oom_control").read_text()  # type: ignore[operator]
            m = re.search(r"^oom_kill (\d+)$", text, re.M)
            if m:
                return int(m.group(1))
        return -1

    def describe_enforcement(self) -> dict[str, str]:
        return {
            "memory": "container mem_limit = memswap_limit (engine cgroup, OOM kill)",
            "pids": "container pids_limit (engine cgroup)",
            "cpu": "container nano_cpus (engine cgroup)",
        }

    # --- files ---------------------------------------------------------------------------------------
    async def put(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(write_beneath, self.workspace, path, data, USER)

    async def get(self, path: str) -> bytes:
        return await asyncio.to_thread(read_beneath, self.workspace, path)

    async def close(self) -> None:
        ctr, self.container = self.container, None
        if ctr is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(ctr.remove, force=True)

    async def __aenter__(self) -> DockerSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class DockerBackend:
    name = "docker"

    def __init__(self, image: str | None = None, client: Any = None) -> None:
        _docker()
        self.image = image or DEFAULT_IMAGE
        self._client = client
        self._ready = False
        self.cgroup_parent: str | None = None

    def _ready_client(self) -> Any:
        """Connect, check the image and find the cgroup parent once per backend."""
        if self._client is None:
            self._client = connect()
        if not self._ready:
            try:
                self._client.images.get(self.image)
            except _docker().errors.ImageNotFound:
                raise SandboxUnavailable(
                    f"sandbox image {self.image} not found: run `gymforge sandbox build-image`") from None
            self.cgroup_parent = cgroup_parent_for(self._client)
            self._ready = True
        return self._client

    async def open(self, workspace: Path, limits: Limits = DEFAULT_LIMITS, mounts: Sequence[Mount] = ()) -> DockerSession:
        workspace = resolve_workspace(workspace)
        check_mounts(mounts)
        client = await asyncio.to_thread(self._ready_client)
        await asyncio.to_thread(_chown_tree, workspace, *USER)
        await asyncio.to_thread(_own_writable, mounts)
        session = DockerSession(client, self.image, workspace, limits, mounts)
        session.cgroup_parent = self.cgroup_parent
        return await started(session)
