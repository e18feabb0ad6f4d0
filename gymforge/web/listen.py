"""`--metrics-port [HOST:]PORT`: parsed without importing the server, so the CLI checks it at once."""

from __future__ import annotations

from gymforge.errors import UserError


def parse_listen(value: str) -> tuple[str, int]:
    """`PORT` or `HOST:PORT`; a bare port listens on every interface (Prometheus scrapes from afar)."""
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"--metrics-port wants PORT or HOST:PORT, not {value!r}") from None
    if not 0 <= number <= 65535:
        raise UserError(f"--metrics-port {number} is not a port")
    return host.strip("[]") or "0.0.0.0", number


def listen_arg(value: str) -> str:
    """argparse type for --metrics-port: checked before anything starts, kept as given."""
    parse_listen(value)
    return value
