"""The JSON API under /api/ (everything the pages show) and the live event stream (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from gymforge.config import Settings
from gymforge.web import queries
from gymforge.web.live import LiveFeed, budget_limit, bus_status, sse
from store import queries as reads
from store.db import Store, StoreError

KEEPALIVE_S = 15.0


class StoreHandle:
    """The store, opened read-only on first use (it may not exist until the sink has run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: Store | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Store | None:
        async with self._lock:
            if self.store is None:
                with contextlib.suppress(StoreError):
                    self.store = await Store.open(self.path, readonly=True)
            return self.store

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", StoreHandle)
FEED = web.AppKey("feed", LiveFeed)

routes = web.RouteTableDef()


def ok(data: Any) -> web.Response:
    return web.json_response(data, dumps=partial(json.dumps, default=str))


def not_found(what: str) -> web.Response:
    return web.json_response({"error": f"no {what}"}, status=404)


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name} must be between {lo} and {hi}")
    return value


async def store_of(request: web.Request) -> Store | None:
    return await request.app[STORE].get()


@routes.get("/api/summary")
async def summary(request: web.Request) -> web.Response:
    store = await store_of(request)
    if store is None:
        return ok({"store": None, "funnel": None})
    return ok({"store": str(store.path), "funnel": await queries.funnel(store),
               "tasks": await reads.task_counts(store), "trajectories": await reads.trajectory_counts(store),
               "usage": await reads.usage_spent(store), "breadth": await reads.breadth(store)})


@routes.get("/api/series")
async def series(request: web.Request) -> web.Response:
    minutes = int_param(request, "minutes", 60, 1, 24 * 60)
    store = await store_of(request)
    return ok(None if store is None else await queries.series(store, minutes))


@routes.get("/api/bus")
async def bus(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    if feed.bus is None or not feed.connected:
        return ok({"connected": False, "url": request.app[SETTINGS].nats_url})
    try:
        return ok({"connected": True, "live": feed.listening.is_set(), **await bus_status(feed.bus)})
    except Exception as exc:  # the server went away between the check and the call
        return ok({"connected": False, "error": str(exc) or type(exc).__name__})


@routes.get("/api/dead")
async def dead(request: web.Request) -> web.Response:
    store = await store_of(request)
    return ok({"letters": [] if store is None else await reads.recent_dead_letters(store)})


@routes.get("/api/budget")
async def budget(request: web.Request) -> web.Response:
    s, feed = request.app[SETTINGS], request.app[FEED]
    limit = await budget_limit(feed.bus) if feed.bus is not None and feed.connected else None
    source = "kv" if limit is not None else "settings"
    limit = limit or {"usd": s.budget_usd, "tokens": s.budget_tokens}
    store = await store_of(request)
    spent = await reads.usage_spent(store) if store else {"usd": 0.0, "tokens": 0, "calls": 0}
    exhausted = None
    if limit.get("usd") is not None and spent["usd"] >= limit["usd"]:
        exhausted = f"budget spent: ${spent['usd']:.4f} of ${limit['usd']:.4f}"
    elif limit.get("tokens") is not None and spent["tokens"] >= limit["tokens"]:
        exhausted = f"budget spent: {spent['tokens']} of {limit['tokens']} tokens"
    return ok({"limit": limit, "source": source, "spent": spent, "exhausted": exhausted})


@routes.get("/api/tasks")
async def tasks(request: web.Request) -> web.Response:
    store = await store_of(request)
    return ok({"tasks": [] if store is None else await queries.tasks(store)})


@routes.get("/api/tasks/{task_id}")
async def task(request: web.Request) -> web.Response:
    store = await store_of(request)
    found = await queries.task(store, request.match_info["task_id"]) if store else None
    return ok(found) if found else not_found("such task")


@routes.get("/api/trajectories")
async def trajectories(request: web.Request) -> web.Response:
    store = await store_of(request)
    rows = await queries.trajectories(store, request.query.get("task_id")) if store else []
    return ok({"trajectories": rows})


@routes.get("/api/trajectories/{traj_id}")
async def trajectory(request: web.Request) -> web.Response:
    store = await store_of(request)
    found = await queries.trajectory(store, request.match_info["traj_id"]) if store else None
    return ok(found) if found else not_found("such trajectory")


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `gf` event per bus message from now on (subject, id, type, summary)."""
    feed = request.app[FEED]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    queue = feed.subscribe()
    try:
        await resp.write(b"retry: 2000\n: connected\n\n")
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if item is None:  # the server is stopping
                break
            await resp.write(sse(item))
    except ConnectionResetError:  # the page went away
        pass
    finally:
        feed.unsubscribe(queue)
    return resp
