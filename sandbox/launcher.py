"""The per-session launcher: a small process started once inside the session's cgroups and rlimits (run as
`python -I -S launcher.py FD`, standard library only) that spawns every exec's process, so each inherits
them without a cgroup migration (on cgroup v1 a migration waits for an RCU grace period, tens of ms).
It is the subreaper of what it spawns: orphans are reaped at once.

Protocol over the SOCK_SEQPACKET socket FD, one JSON object per message:
  request  {"id", "path", "argv", "env", optional "fsize" (its soft RLIMIT_FSIZE)} with the fds attached
           that become its 0, 1, 2, ... (stdin, stdout, stderr, then any more); the working directory is
           the launcher's own
  replies  {"id", "pid"} once spawned (or {"id", "error"}), then {"id", "status"} (a wait status)."""

from __future__ import annotations

import array
import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Iterator

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
MAX_FDS = 8  # stdin, stdout, stderr and a few more (e.g. bwrap's seccomp program)


class Launcher:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        self.lock = threading.Condition()
        self.ids: dict[int, int] = {}  # pid -> request id

    def send(self, msg: dict[str, object]) -> None:
        with self.send_lock, contextlib.suppress(OSError):
            self.sock.send(json.dumps(msg).encode())

    def serve(self) -> None:
        threading.Thread(target=self.reap, daemon=True).start()
        while True:
            data, ancdata, _, _ = self.sock.recvmsg(4 << 20, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
            if not data:
                return
            fds = array.array("i")
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            try:
                self.spawn(json.loads(data), list(fds))
            finally:
                for fd in fds:
                    os.close(fd)

    def spawn(self, req: dict, fds: list[int]) -> None:
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        try:
            with self.lock, file_limit(req.get("fsize")):  # held until registered: the reaper cannot see the pid before
                pid = os.posix_spawn(req["path"], req["argv"], req["env"], file_actions=actions, setsid=True)
                self.ids[pid] = req["id"]
                self.lock.notify()
        except OSError as e:
            self.send({"id": req["id"], "error": f"{type(e).__name__}: {e.strerror or e}"})
            return
        self.send({"id": req["id"], "pid": pid})

    def reap(self) -> None:
        """Wait for every child: report the ones spawned, reap the adopted orphans silently."""
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                with self.lock:
                    self.lock.wait(0.5)
                continue
            with self.lock:
                rid = self.ids.pop(pid, None)
            if rid is not None:
                self.send({"id": rid, "status": status})


@contextlib.contextmanager
def file_limit(size: int | None) -> Iterator[None]:
    """Lower the soft RLIMIT_FSIZE (which the spawned process inherits) for the duration; the hard limit,
    set when the launcher started, stays."""
    if size is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size if hard == resource.RLIM_INFINITY else min(size, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited: a write past RLIMIT_FSIZE fails with EFBIG
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    if os.getppid() == 1:
        return
    Launcher(sock).serve()


if __name__ == "__main__":
    main()
