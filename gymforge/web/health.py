"""The daemons' operations endpoint: `/metrics` (Prometheus text), `/healthz` (the process answers) and
`/readyz` (connected to NATS and every consumer fetching), served by `agent --metrics-port` and
`run --metrics-port`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from agents.runtime import Supervisor
from bus import Bus
from gymforge.errors import UserError
from gymforge.metrics import Metrics
from gymforge.web.listen import parse_listen

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def readiness(bus: Bus, sup: Supervisor) -> Callable[[], str | None]:
    """A reason the process is not ready, or None."""

    def reason() -> str | None:
        nc = getattr(bus, "nc", None)
        if nc is None or not nc.is_connected:
            return "not connected to NATS"
        if sup.stopped.is_set():
            return "stopping"
        idle = [r.agent.role for r in sup.runners if not r.consumer.consuming]
        return f"not consuming yet: {', '.join(idle)}" if idle else None

    return reason


def make_app(metrics: Metrics, not_ready: Callable[[], str | None]) -> web.Application:
    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": PROMETHEUS_TYPE})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        why = not_ready()
        return web.Response(text="ready\n") if why is None else web.Response(status=503, text=f"{why}\n")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class Exporter:
    """Instruments a supervisor's runners and serves their metrics until `stop()`."""

    def __init__(self, listen: str, bus: Bus, sup: Supervisor) -> None:
        self.host, self.port = parse_listen(listen)
        self.metrics = Metrics()
        self.metrics.instrument(sup.runners)
        self.app = make_app(self.metrics, readiness(bus, sup))
        self.runner: web.AppRunner | None = None

    async def start(self) -> Exporter:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise UserError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def start_exporter(listen: str | None, bus: Bus, sup: Supervisor) -> Exporter | None:
    """Serve /metrics, /healthz and /readyz for these runners when `listen` is given (before `sup.run()`)."""
    return None if listen is None else await Exporter(listen, bus, sup).start()
