"""The CLI's command modules; each exposes `register(subparsers)`."""

from __future__ import annotations

import asyncio
import signal
from typing import Any


async def serve_until_signalled(server: Any) -> None:
    """Keep a started server up until SIGTERM or SIGINT, then stop it."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
