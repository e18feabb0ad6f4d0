"""`gymforge teacher`: an OpenAI-compatible HTTP server (aiohttp) answering with the rule-based policy.

Its model id says what it is: a rule-based stand-in, not a model. It can add latency and inject 429/500
errors or hangs at given rates, for load and fault tests. The request body's `seed` goes to the policy;
when its `tools` offer a function named "bash", the reply text becomes an assistant message calling it
(one call per command block: a malformed reply makes no call, or two). A `response_format` asking for the
"topics" or "task_bundle" JSON gets it. The config's `style` re-styles every reply the way some real model
writes (teacher/styles.py); usage reports the prompt tokens a prefix cache would have served
(`prompt_tokens_details.cached_tokens`) and the thinking's (`completion_tokens_details.reasoning_tokens`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from domain.model_api import PROBE_PURPOSE, PURPOSE_HEADER, TEACHER_MODEL
from domain.tokens import conversation_tokens, estimate
from teacher.policy import PolicyError, TeacherConfig, answer
from teacher.probe import probe_reply
from teacher.styles import PrefixCache, Styled, Styler, offers_bash, tool_message

__all__ = ["Faults", "TeacherApp", "TeacherServer", "offers_bash", "tool_message"]

SHUTDOWN_TIMEOUT_S = 1.0  # how long stop() lets requests in progress finish


@dataclass
class Faults:
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    error_rate: float = 0.0  # share of calls answered 429 or 500
    hang_rate: float = 0.0  # share of calls that hang for hang_s (past any sane client timeout)
    hang_s: float = 300.0
    seed: int = 0


@dataclass
class Counters:
    calls: int = 0
    errors: int = 0
    hangs: int = 0
    in_flight: int = 0  # chat requests being handled now
    max_in_flight: int = 0  # the most ever handled at once
    by_purpose: dict[str, int] = field(default_factory=dict)
    structured: int = 0  # replies given as the JSON a response_format asked for


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class TeacherApp:
    def __init__(self, config: TeacherConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or TeacherConfig()
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.counters = Counters()
        self.styler = Styler(self.config.style)
        self.prefixes = PrefixCache()
        # one policy call at a time: it runs in a worker thread (the loop stays free) and CPython 3.11's
        # ast.parse, which it uses on baseline.py, is not thread-safe (gh-106905); under the GIL nothing is lost
        self.policy_lock = asyncio.Lock()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.add_routes([web.post("/v1/chat/completions", self.chat), web.get("/v1/models", self.models),
                             web.get("/healthz", self.health)])

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "calls": self.counters.calls})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": TEACHER_MODEL, "object": "model", "created": 0,
             "owned_by": "gymforge (rule-based stand-in, not a model)"}]})

    async def chat(self, request: web.Request) -> web.Response:
        c = self.counters
        c.calls += 1
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            return await self._chat(request)
        finally:
            c.in_flight -= 1

    async def _chat(self, request: web.Request) -> web.Response:
        """The latency is the response time (the answer is worked out while it runs, as a remote model's
        would be), then the injected hang and error, if rolled."""
        started = time.monotonic()
        delay, hang, error = self._roll_faults()
        response = await self._answer(request) if not (hang or error) else None
        await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))
        if hang:
            self.counters.hangs += 1
            await asyncio.sleep(self.faults.hang_s)
        if error == 429:
            return web.json_response(error_body("Rate limit reached (injected)", "rate_limit_error",
                                                "rate_limit_exceeded"), status=429, headers={"Retry-After": "0.2"})
        if error == 500:
            return web.json_response(error_body("Internal error (injected)", "server_error"), status=500)
        return response if response is not None else await self._answer(request)

    def _roll_faults(self) -> tuple[float, bool, int | None]:
        """(latency, hang?, injected status or None), drawn in a fixed order from the seeded generator."""
        f = self.faults
        delay = f.latency_s + (self.rng.uniform(0, f.latency_jitter_s) if f.latency_jitter_s else 0.0)
        hang = self.rng.random() < f.hang_rate
        error = None
        if self.rng.random() < f.error_rate:
            self.counters.errors += 1
            error = 429 if self.rng.random() < 0.5 else 500
        return delay, hang, error

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            messages = body["messages"]
            seed, tools, response_format = body.get("seed"), body.get("tools"), body.get("response_format")
            if not isinstance(messages, list) or not isinstance(seed, int | None) or not isinstance(tools, list | None):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            return web.json_response(error_body("body must be JSON with messages (and an int seed, a tools list)",
                                                "invalid_request_error"), status=400)
        purpose = request.headers.get(PURPOSE_HEADER, "")
        self.counters.by_purpose[purpose] = self.counters.by_purpose.get(purpose, 0) + 1
        try:
            async with self.policy_lock:
                canonical = self.styler.policy_messages(messages)
                text = (probe_reply(canonical, response_format) if purpose == PROBE_PURPOSE
                        else await asyncio.to_thread(answer, purpose, canonical, self.config, seed, tools))
                styled = self.styler.reply(purpose, messages, text, tools=tools, seed=seed,
                                           response_format=response_format)
        except PolicyError as exc:
            return web.json_response(error_body(str(exc), "invalid_request_error"), status=400)
        self.counters.structured += styled.structured
        return web.json_response(completion(styled, conversation_tokens(messages),
                                            self.prefixes.cached_tokens(messages)))


def completion(styled: Styled, prompt_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    ct = styled.completion_tokens
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": TEACHER_MODEL,
        "choices": [{"index": 0, "message": styled.message, "finish_reason": styled.finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": ct, "total_tokens": prompt_tokens + ct,
                  "prompt_tokens_details": {"cached_tokens": cached_tokens},
                  "completion_tokens_details": {"reasoning_tokens": estimate(styled.thinking)}},
    }


class TeacherServer:
    """Run the teacher on host:port (0 = a free port) inside the current event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: TeacherConfig | None = None,
                 faults: Faults | None = None) -> None:
        self.host, self.port = host, port
        self.teacher = TeacherApp(config, faults)
        self.runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        # A hung request ends when its client gives up, and stop() does not wait out hang_s (300 s) for the
        # ones still connected: aiohttp would otherwise hold the shutdown for up to 60 s.
        self.runner = web.AppRunner(self.teacher.app, access_log=None, handler_cancellation=True,
                                    shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        server = site._server  # noqa: SLF001 - the bound port when 0 was asked for
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> TeacherServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
