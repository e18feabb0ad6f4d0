"""The embedded nats-server on the data dir's store, shared by every local command that needs it.

`run` and the reading commands (status, tail, dlq replay, web) take a *lease* on the embedded server of
their data dir: the first finds nothing answering at the local `nats_url` and starts nats-server on
`<data_dir>/nats` (the store `run` writes, so the history is there); the others find it answering and use
it. The last lease holder to end stops it, whoever started it. Three files in the data dir coordinate them:

- `nats.lock`: held exclusively while a command decides whether to start or stop the server (never long);
- `nats.users`: every lease holder holds it shared; the one that can take it exclusively is the last;
- `nats.pid`: the pid of a server a lease started (a server nobody started this way is never stopped).

The kernel drops a killed command's locks, so a crash leaves no stale lease: the next command uses the
server it left running (`nats.pid`) and stops it at its end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from bus import EmbeddedNats, NatsUnavailable
from bus.server import find_nats_server

READY_TIMEOUT_S = 15.0


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something at host:port speaks NATS (sends INFO)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


class LocalNats:
    """A lease on the data dir's embedded server; `release()` (or `stop()`) ends it."""

    def __init__(self, data_dir: Path, url: str) -> None:
        parsed = urlparse(url if "://" in url else f"nats://{url}")
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 4222
        self.data_dir = data_dir
        self.started = False  # this lease started the server
        self._users: IO[bytes] | None = None

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "nats.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats.log"

    def acquire(self) -> LocalNats:
        """Take the lease, starting the server when nothing answers (NatsUnavailable if it cannot start)."""
        with self._guard():
            users = (self.data_dir / "nats.users").open("ab")
            fcntl.flock(users, fcntl.LOCK_SH)
            try:
                if not answers(self.host, self.port):
                    self._start()
                    self.started = True
            except BaseException:
                users.close()
                raise
            self._users = users
        return self

    def release(self) -> None:
        """End the lease; the last holder stops a server a lease started."""
        users, self._users = self._users, None
        if users is None:
            return
        with self._guard():
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                users.close()  # someone else still uses it
                return
            try:
                self._stop_started()
            finally:
                users.close()

    async def stop(self) -> None:  # the name `run` has always called
        import asyncio

        await asyncio.to_thread(self.release)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        with (self.data_dir / "nats.lock").open("ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = EmbeddedNats(self.store_dir, host=self.host, port=self.port).command()
        cmd[0] = find_nats_server()
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)  # outlives this command when others still use it
        self.pid_file.write_text(f"{proc.pid}\n")  # at once: a command killed from here on leaves it findable
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(self.host, self.port, timeout=0.25):
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise NatsUnavailable(f"nats-server exited with code {proc.returncode} ({self._last_log_line()})")
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                self.pid_file.unlink(missing_ok=True)
                raise NatsUnavailable(f"nats-server did not become ready on {self.host}:{self.port} "
                                      f"within {READY_TIMEOUT_S:.0f}s")
            time.sleep(0.05)

    def _last_log_line(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1].strip() if lines else f"port {self.port} busy?"

    def _stop_started(self) -> None:
        pid = self._leased_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)

    def _leased_pid(self) -> int | None:
        """The pid in nats.pid when it is still that nats-server on this store (pids get reused)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if str(self.store_dir).encode() not in cmdline or not cmdline[0].endswith(b"nats-server"):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # our own child: collect it, else it stays a zombie


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
