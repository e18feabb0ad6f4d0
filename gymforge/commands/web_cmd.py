"""`gymforge web`: the dashboard — funnel, plots, consumer lag, dead letters, budget, a task browser and a
trajectory viewer read from the store, with live updates from the bus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from gymforge.app import ensure_nats, with_settings
from gymforge.config import Settings
from gymforge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the dashboard: funnel, lag, budget, tasks and trajectories, live")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.set_defaults(func=with_settings(cmd_web))


def cmd_web(args: argparse.Namespace, s: Settings) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port")
    asyncio.run(serve(s, args.host, args.port))
    return 0


async def serve(s: Settings, host: str, port: int) -> None:
    try:  # after `run`, the data dir's store is served while the dashboard is up
        lease = await ensure_nats(s)
    except UserError as exc:  # the pages still show the store; the live feed keeps trying
        print(f"gymforge: {exc} (the dashboard shows the store; live updates when NATS answers)", file=sys.stderr)
        lease = None
    try:
        await _serve(s, host, port)
    finally:
        if lease is not None:
            lease.release()


async def _serve(s: Settings, host: str, port: int) -> None:
    from gymforge.web.app import WebServer

    server = WebServer(s, host, port)
    try:
        await server.start()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    print(f"gymforge dashboard on {server.url} (store {s.db_path}, bus {s.nats_url}); Ctrl-C to stop",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
