"""Commands that run agents: `agent ROLE` (one daemon) and `run` (everything in one process)."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from agents.runtime import AgentRunner, Supervisor
from gymforge.app import (
    ROLES,
    build_agent,
    connect,
    ensure_data_dir,
    retry_policy,
    start_budget,
    with_settings,
)
from gymforge.config import Settings
from gymforge.daemon import tune_gc
from gymforge.errors import UserError
from gymforge.web.listen import listen_arg

log = structlog.get_logger("gymforge")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="run one role as a long-lived daemon")
    p.add_argument("role", help=f"one of: {', '.join(sorted(ROLES))}")
    p.add_argument("--concurrency", type=int, default=None, help="messages handled at once")
    p.add_argument("--metrics-port", default=None, metavar="[HOST:]PORT", type=listen_arg,
                   help="serve /metrics, /healthz and /readyz here")
    p.set_defaults(func=with_settings(cmd_agent))


async def run_roles(s: Settings, roles: list[str], concurrency: dict[str, int] | None = None,
                    stop: asyncio.Event | None = None, metrics_port: str | None = None) -> None:
    """Run the given roles in this process until SIGINT/SIGTERM (or `stop`)."""
    ensure_data_dir(s)
    bus = await connect(s, name=f"gymforge-{'+'.join(roles)}")
    budget = await start_budget(bus, s)
    try:
        runners = [
            AgentRunner(build_agent(r, bus, s, gate=budget.exhausted), concurrency=(concurrency or {}).get(r),
                        retry=retry_policy(s))
            for r in roles
        ]
        sup = Supervisor(runners, grace_s=s.shutdown_grace_s)
        sup.install_signal_handlers()
        if stop is not None:
            asyncio.get_running_loop().create_task(_relay(stop, sup))
        from gymforge.web.health import start_exporter

        exporter = await start_exporter(metrics_port, bus, sup)
        log.info("agents started", roles=roles, nats=s.nats_url, metrics_port=exporter and exporter.port)
        try:
            await sup.run()
        finally:
            if exporter:
                await exporter.stop()
        log.info("agents stopped", roles=roles)
    finally:
        await budget.stop()
        await bus.close()


async def _relay(stop: asyncio.Event, sup: Supervisor) -> None:
    await stop.wait()
    sup.request_stop()


def cmd_agent(args: argparse.Namespace, s: Settings) -> int:
    if args.role not in ROLES:
        raise UserError(f"unknown role {args.role!r}: choose one of {', '.join(sorted(ROLES))}")
    if args.concurrency is not None and args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    conc = {args.role: args.concurrency} if args.concurrency else None
    tune_gc()
    asyncio.run(run_roles(s, [args.role], conc, metrics_port=args.metrics_port))
    return 0
