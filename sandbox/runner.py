"""Running one host process for an exec through the session's launcher (see launcher.py): it starts inside
the session's cgroups and rlimits, in its own session (process group), output kept head + tail, and when it
ends, times out or is cancelled, its process group is killed."""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import itertools
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import TIMEOUT_EXIT_CODE, ExecResult, OutputBuffer, SandboxUnavailable, exit_code_of
from .limits import Cgroups, preexec

LAUNCHER = Path(__file__).with_name("launcher.py")
DRAIN_GRACE_S = 2.0  # after exit, how long to keep reading pipes a leftover process might hold open
NOT_FOUND = 127
MESSAGE_MAX = 4 * 1024 * 1024  # the launcher's receive buffer is the same
SO_SNDBUFFORCE = 32  # Linux; needs CAP_NET_ADMIN, else the send buffer stays at net.core.wmem_max


class Launcher:
    """The parent side of one session's launcher process."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.ids = itertools.count(1)
        self.spawned: dict[int, asyncio.Future[int]] = {}
        self.exited: dict[int, asyncio.Future[int]] = {}
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    async def start(cls, procs: list[str], rlimits: list[tuple[int, int]], cwd: str) -> Launcher:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", str(LAUNCHER), str(child.fileno()), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, pass_fds=[child.fileno()], cwd=cwd, env={"PATH": "/usr/bin:/bin"},
                start_new_session=True, preexec_fn=preexec(procs, rlimits))
        finally:
            child.close()
        parent.setblocking(False)
        with contextlib.suppress(OSError):  # room for argv + env up to what execve takes (ARG_MAX ~2 MiB)
            parent.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, MESSAGE_MAX)
        return cls(proc, parent)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and self.sock.fileno() >= 0

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            msg = json.loads(data)
            rid = msg["id"]
            if "pid" in msg:
                _resolve(self.spawned.pop(rid, None), msg["pid"])
            elif "error" in msg:
                _resolve(self.spawned.pop(rid, None), None, OSError(msg["error"]))
                _resolve(self.exited.pop(rid, None), NOT_FOUND << 8)
            else:
                _resolve(self.exited.pop(rid, None), msg["status"])

    def _lost(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        error = SandboxUnavailable("the sandbox launcher process died")
        for fut in [*self.spawned.values(), *self.exited.values()]:
            _resolve(fut, None, error)
        self.spawned.clear()
        self.exited.clear()

    def send(self, path: str, argv: Sequence[str], env: Mapping[str, str], fds: list[int],
             fsize: int | None = None) -> tuple[asyncio.Future[int], asyncio.Future[int]]:
        """Ask for argv to be started (with `fsize` as its soft RLIMIT_FSIZE); returns at once with a future of
        its pid (OSError when it could not start) and one of its wait status. The fds may be closed now."""
        rid = next(self.ids)
        spawned, exited = self.loop.create_future(), self.loop.create_future()
        request: dict[str, object] = {"id": rid, "path": path, "argv": list(argv), "env": dict(env)}
        if fsize is not None:
            request["fsize"] = fsize
        msg = json.dumps(request).encode()
        try:
            self.sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise OSError(f"command and environment too large ({len(msg)} bytes)") from None
            raise SandboxUnavailable(f"the sandbox launcher is gone ({e})") from None
        self.spawned[rid], self.exited[rid] = spawned, exited
        return spawned, exited

    async def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._lost()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()


def _resolve(fut: asyncio.Future | None, value: object, error: BaseException | None = None) -> None:
    if fut is None or fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


def _forget(fut: asyncio.Future[Any]) -> None:
    """Nobody will await `fut`: retrieve its error if it has one (no 'never retrieved' warning), else cancel."""
    if fut.done():
        if not fut.cancelled():
            fut.exception()
    else:
        fut.cancel()


class PipeReader:
    """One pipe read into an OutputBuffer by event-loop callbacks (add_reader): nothing to await to set up,
    `done` resolves at end of file. `close()` stops reading (idempotent)."""

    def __init__(self, fd: int, buf: OutputBuffer) -> None:
        self.fd, self.buf = fd, buf
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.buf.feed(data)
        else:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        _resolve(self.done, None)


def kill_when_started(spawned: asyncio.Future[int]) -> None:
    """Kill the process group once its pid is known (now, or when the launcher's reply comes)."""
    def kill(f: asyncio.Future[int]) -> None:
        if not f.cancelled() and f.exception() is None:
            kill_group(f.result())
    spawned.add_done_callback(kill)


async def _wait_exit(spawned: asyncio.Future[int], exited: asyncio.Future[int],
                     abort: Callable[[], Coroutine[Any, Any, str]] | None, timeout: float) -> tuple[bool, str | None]:
    """Until the command exits (False, None), times out (True, None) or `abort` gives a reason (False, reason);
    on timeout or abort its process group is killed here (once its pid is known)."""
    watch = asyncio.ensure_future(abort()) if abort is not None else None
    try:
        finished, _ = await asyncio.wait([exited, *([watch] if watch else [])], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
    finally:
        if watch is not None:
            watch.cancel()
    if exited in finished:
        return False, None
    stopped = watch.result() if watch is not None and watch in finished else None
    kill_group(await spawned)
    return stopped is None, stopped


def _close_all(readers: list[PipeReader]) -> None:
    for r in readers:
        r.close()


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def resolve(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The executable argv[0] names, looked up on the exec's own PATH."""
    if "/" in argv[0]:
        return argv[0]
    return shutil.which(argv[0], path=env.get("PATH", ""))


async def run_process(
    launcher: Launcher,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    output_bytes: int,
    cgroups: Cgroups,
    extra_fds: Sequence[int] = (),
    file_bytes: int | None = None,
    abort: Callable[[], Coroutine[Any, Any, str]] | None = None,
) -> ExecResult:
    """Run argv; `extra_fds` become its fds 3, 4, ... (the caller closes them); no file it writes may grow
    past `file_bytes` (EFBIG). `abort` is started once the command runs: if it returns (a reason) first,
    the command is killed and the result says why."""
    out, err = OutputBuffer(output_bytes), OutputBuffer(output_bytes)
    start = time.monotonic()
    path = resolve(argv, env)
    if path is None:
        return ExecResult(NOT_FOUND, "", f"{argv[0]}: command not found\n", 0.0, False, False, False)
    oom_before = cgroups.oom_kills()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:  # not waiting for the pid: the command runs meanwhile; it is needed only to kill the group
        spawned, exited = launcher.send(path, argv, env, [devnull, out_w, err_w, *extra_fds], file_bytes)
    except OSError as e:  # too large to send
        for fd in (out_r, err_r):
            os.close(fd)
        return ExecResult(126, "", f"{argv[0]}: {e}\n", time.monotonic() - start, False, False, False)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (devnull, out_w, err_w):
            os.close(fd)
    readers = [PipeReader(out_r, out), PipeReader(err_r, err)]
    try:
        timed_out, stopped = await _wait_exit(spawned, exited, abort, timeout)
        status = await exited
        pid = await spawned
    except OSError as e:  # it could not be started
        _close_all(readers)
        return ExecResult(126, "", f"{argv[0]}: {e}\n", time.monotonic() - start, False, False, False)
    except BaseException:  # cancelled, or the launcher died: nothing may outlive the exec
        kill_when_started(spawned)
        _forget(exited)
        _close_all(readers)
        raise
    kill_group(pid)  # on timeout the command itself; after a normal exit, what it left in the background
    duration = time.monotonic() - start
    try:
        await asyncio.wait([r.done for r in readers], timeout=DRAIN_GRACE_S)
    finally:
        _close_all(readers)
    if stopped:
        err.feed(f"\nsandbox: killed: {stopped}\n".encode())
    return ExecResult(
        exit_code=TIMEOUT_EXIT_CODE if timed_out else exit_code_of(os.waitstatus_to_exitcode(status)),
        stdout=out.text(),
        stderr=err.text(),
        duration_s=duration,
        timed_out=timed_out,
        oom_killed=cgroups.oom_kills() > oom_before,
        truncated=out.truncated or err.truncated,
        disk_exceeded=stopped is not None,
    )
