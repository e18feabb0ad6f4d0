"""The dashboard's aiohttp application: pages (static HTML + plain JS, no build step, nothing from a CDN),
the JSON API, the live event stream, and strict security headers (model-written text is data, never
markup: the scripts only ever set textContent)."""

from __future__ import annotations

from pathlib import Path
from string import Template

from aiohttp import web

from gymforge.config import Settings
from gymforge.web.api import FEED, SETTINGS, STORE, StoreHandle, routes
from gymforge.web.live import LiveFeed

STATIC = Path(__file__).parent / "static"
# "/" is index.html; the others are page.html with $name the page's script (static/NAME.js) and title
PAGES = {"/tasks": "tasks", "/tasks/{task_id}": "task", "/trajectories/{traj_id}": "trajectory"}
NO_CACHE = {"Cache-Control": "no-cache"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@web.middleware
async def security_headers(request: web.Request, handler):  # noqa: ANN001, ANN201 - aiohttp middleware
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


def page(name: str):  # noqa: ANN201 - an aiohttp handler
    html = Template((STATIC / "page.html").read_text()).substitute(name=name)

    async def serve(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html", headers=NO_CACHE)

    return serve


def make_app(settings: Settings, *, live: bool = True) -> web.Application:
    app = web.Application(middlewares=[security_headers])
    app[SETTINGS] = settings
    app[STORE] = StoreHandle(settings.db_path)
    app[FEED] = LiveFeed(settings)
    app.add_routes(routes)
    app.router.add_get("/", index)
    for path, name in PAGES.items():
        app.router.add_get(path, page(name))
    app.router.add_static("/static/", STATIC, append_version=False)

    async def start(app: web.Application) -> None:
        if live:
            app[FEED].start()

    async def shutdown(app: web.Application) -> None:
        await app[FEED].stop()  # ends the open event streams first
        await app[STORE].close()

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    return app


class WebServer:
    """The dashboard on host:port (0 = a free port) inside the running event loop."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.settings, self.host, self.port = settings, host, port
        self.app = make_app(settings)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def feed(self) -> LiveFeed:
        return self.app[FEED]

    async def start(self) -> WebServer:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self.runner.cleanup()
            raise
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> WebServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
