"""Wiring: settings -> bus, embedded server, agents. The only place that knows every role."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from agents.budget import BudgetWatcher, Limit
from agents.roles import MODEL_ROLES, ROLES
from agents.runtime import Agent, AgentContext
from bus import Bus, BusSettings, NatsRefused, NatsUnavailable, RetryPolicy
from bus.server import url_answers
from domain.payloads import PAYLOADS
from gymforge.config import Settings, role_settings
from gymforge.errors import UserError
from gymforge.local_nats import LocalNats
from sandbox.runtimes import unavailable

__all__ = ["MODEL_ROLES", "ROLES", "build_agent"]


def teacher_url(s: Settings) -> str:
    return f"http://127.0.0.1:{s.teacher_port}/v1"


def uses_offline_teacher(s: Settings) -> bool:
    return not s.openai_base_url


async def ensure_teacher(s: Settings) -> Any:
    """Start the offline teacher in this process when it is the endpoint and nothing answers there."""
    from teacher.policy import TeacherConfig
    from teacher.server import TeacherServer

    if not uses_offline_teacher(s) or await http_answers(teacher_url(s) + "/models"):
        return None
    config = TeacherConfig(defect_rate=s.teacher_defect_rate, knowledge=tuple(mirror_knowledge(s)),
                           style=s.teacher_style)
    server = TeacherServer(port=s.teacher_port, config=config)
    try:
        await server.start()
    except OSError as exc:
        raise UserError(f"cannot start the offline teacher on port {s.teacher_port}: {exc.strerror}; "
                        "set GYMFORGE_TEACHER_PORT") from None
    return server


def mirror_dir(s: Settings, directory: Path | None = None) -> Path:
    return directory or s.hub.mirror_dir or s.data_dir / "hub-mirror"


def mirror_knowledge(s: Settings) -> list[dict[str, Any]]:
    """The offline teacher's knowledge of the Hub: the mirror's datasets, when the mirror is the Hub in use
    and is built; else none (it proposes from the local catalog)."""
    from hubmirror.index import MirrorError, is_built, knowledge, load_index

    if not s.hub.uses_mirror or not is_built(mirror_dir(s)):
        return []
    try:
        return knowledge(load_index(mirror_dir(s)))
    except MirrorError as exc:
        raise UserError(str(exc)) from None


def load_mirror(s: Settings, directory: Path | None = None, *, force: bool = False, progress: bool = False) -> Any:
    """The offline Hub mirror's index, built first when missing (a minute or so, once per data dir)."""
    from hubmirror.build import build_mirror
    from hubmirror.index import MirrorError, is_built, load_index

    root = mirror_dir(s, directory)
    try:
        if is_built(root) and not force:
            return load_index(root)
        if directory is None:
            ensure_data_dir(s)
        if progress:
            print(f"building the offline Hub mirror in {root} (once) ...", file=sys.stderr)
        return build_mirror(root, force=force)
    except MirrorError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot build the mirror in {root}: {exc.strerror or exc}") from None


async def start_mirror(s: Settings, directory: Path | None = None, *, host: str = "127.0.0.1",
                       port: int | None = None) -> Any:
    """The mirror's server, listening (its index must be built: `load_mirror`)."""
    from hubmirror.index import MirrorError
    from hubmirror.server import MirrorServer

    port = s.hub.mirror_port if port is None else port
    try:
        server = MirrorServer(mirror_dir(s, directory), host=host, port=port)
        await server.start()
    except MirrorError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot serve the Hub mirror on {host}:{port}: {exc.strerror or exc}; "
                        "set GYMFORGE_HF_MIRROR_PORT or stop what listens there") from None
    return server


async def ensure_mirror(s: Settings, progress: bool = False) -> Any:
    """Start the offline Hub mirror in this process when it is the Hub in use and nothing answers there."""
    if not s.hub.uses_mirror or await http_answers(s.hub.mirror_url() + "/api/datasets?limit=1"):
        return None
    await asyncio.to_thread(load_mirror, s, progress=progress)
    return await start_mirror(s)


async def http_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, http.get(url) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def models(s: Settings) -> Any:
    """The teacher endpoint (proposer, coder, debugger), the solver's (the offline teacher by default) and the
    price table (the `prices` setting merged over the built-in one). A role's own model and request options
    are its settings' (agents/model_options.py, applied by `agents.llm_agent.role_llm`)."""
    from agents.llm import Endpoint, Models, Prices
    from domain.model_api import TEACHER_MODEL

    offline = Endpoint(base_url=teacher_url(s), api_key="offline", model=TEACHER_MODEL,
                       concurrency=s.llm_concurrency, timeout_s=s.llm_timeout_s, max_retries=s.llm_max_retries)
    teacher = offline
    if s.openai_base_url:
        teacher = Endpoint(base_url=s.openai_base_url, api_key=s.secret("openai_api_key") or "",
                           model=s.teacher_model or "gpt-5", concurrency=s.llm_concurrency,
                           timeout_s=s.llm_timeout_s, max_retries=s.llm_max_retries)
    solver = teacher
    if s.solver_base_url:
        solver = Endpoint(base_url=s.solver_base_url, api_key=s.secret("solver_api_key") or teacher.api_key,
                          model=teacher.model, concurrency=s.llm_concurrency,
                          timeout_s=s.llm_timeout_s, max_retries=s.llm_max_retries)
    prices = Prices()
    prices.table.update(s.prices)
    return Models(teacher=teacher, solver=solver, prices=prices)


def with_settings(fn: Callable[[Any, Settings], int]) -> Callable[[Any], int]:
    """Adapt a command taking (args, settings) to the CLI's func(args) convention."""

    def run(args: Any) -> int:
        return fn(args, args.settings)

    run.__name__ = fn.__name__
    return run


def bus_settings(s: Settings) -> BusSettings:
    return BusSettings(
        url=s.nats_url, duplicate_window_s=s.duplicate_window_s, user=s.nats_user,
        password=s.secret("nats_password"), token=s.secret("nats_token"), creds_file=s.nats_creds,
        tls_ca=s.nats_tls_ca, tls_cert=s.nats_tls_cert, tls_key=s.nats_tls_key,
    )


def retry_policy(s: Settings) -> RetryPolicy:
    return RetryPolicy(max_deliver=s.max_deliver)


def ensure_data_dir(s: Settings) -> Path:
    try:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=s.data_dir):  # its own probe: agents start side by side in one data dir
            pass
    except OSError as exc:
        raise UserError(
            f"data dir {s.data_dir} is not writable ({exc.strerror}): set GYMFORGE_DATA_DIR to a writable directory"
        ) from None
    return s.data_dir


async def connect(s: Settings, *, name: str = "gymforge", setup: bool = True) -> Bus:
    try:
        return await Bus.connect(bus_settings(s), types=PAYLOADS, name=name, setup=setup)
    except NatsUnavailable as exc:
        hint = "" if isinstance(exc, NatsRefused) else "; start one with `gymforge nats` or set GYMFORGE_NATS_URL"
        raise UserError(f"{exc}{hint}") from None


def is_local_url(url: str) -> bool:
    host = urlparse(url if "://" in url else f"nats://{url}").hostname or ""
    return host in {"127.0.0.1", "localhost", "::1"}


async def ensure_nats(s: Settings) -> LocalNats | None:
    """Use a server that answers at nats_url; at a local URL (with `embedded_nats`), take a lease on the data
    dir's embedded server, started on `<data_dir>/nats` when nothing answers (gymforge/local_nats.py). The
    caller ends the lease with `stop()`; the last holder stops a server a lease started."""
    if not (s.embedded_nats and is_local_url(s.nats_url)):
        if await url_answers(s.nats_url):
            return None
        raise UserError(f"cannot reach NATS at {s.nats_url}: start it, or point GYMFORGE_NATS_URL at a running server")
    try:
        data_dir = ensure_data_dir(s)
    except UserError:
        if await url_answers(s.nats_url):  # a server answers: no store of ours is needed
            return None
        raise
    try:
        return await asyncio.to_thread(LocalNats(data_dir, s.nats_url).acquire)
    except NatsUnavailable as exc:
        raise UserError(f"{exc}; see {s.data_dir / 'nats.log'}") from None
    except OSError as exc:
        raise UserError(f"cannot start NATS on the store in {data_dir / 'nats'}: {exc.strerror or exc}") from None


@contextlib.asynccontextmanager
async def local_bus(s: Settings, *, name: str, setup: bool = True) -> AsyncIterator[Bus]:
    """A connected bus for a command that reads (status, tail, dlq replay, web, the exports): after `run`,
    with no server left running, the data dir's store is served for as long as the command lasts."""
    lease = await ensure_nats(s)
    previous = _interrupt_on_sigterm() if lease is not None else None
    try:
        bus = await connect(s, name=name, setup=setup)
        try:
            yield bus
        finally:
            await bus.close()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if lease is not None:
            lease.release()


def _interrupt_on_sigterm() -> Any:
    """SIGTERM as Ctrl-C, so that a terminated reader still ends its lease (the last one stops the server)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


async def start_budget(bus: Bus, s: Settings) -> BudgetWatcher:
    watcher = BudgetWatcher(bus, Limit(usd=s.budget_usd, tokens=s.budget_tokens))
    await watcher.start()
    return watcher


def build_agent(role: str, bus: Bus, s: Settings, gate: Callable[[], str | None] | None = None) -> Agent:
    """The agent for a role, with its settings; `gate` (the budget) only holds back roles that spend it."""
    cls = ROLES.get(role)
    if cls is None:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    why = unavailable(s.sandbox.task_runtime, s.sandbox.backend) if cls.runs_task_code else None
    if why:
        raise UserError(why)
    ctx = AgentContext(bus=bus, data_dir=s.data_dir, gate=gate if cls.spends_budget else None, models=models(s))
    agent = cls(ctx, role_settings(cls, s))
    if s.ack_wait_s is not None:  # heartbeats keep long work alive; a short wait redelivers a crash's work sooner
        agent.ack_wait_s = s.ack_wait_s
    return agent
