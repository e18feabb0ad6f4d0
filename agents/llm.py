"""The model client: the `openai` SDK (over aiohttp, its `aiohttp` extra) against any OpenAI-compatible endpoint.

tenacity retries rate limits, timeouts, connection errors and 5xx with jittered exponential backoff
(honouring Retry-After); other 4xx are not retried. A concurrency limit per endpoint; every call's tokens,
cost and latency go to a usage callback (published on `gf.usage`). When retries run out the caller gets
`bus.Transient`, so the event is nak'ed and waits: nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from agents import replies
from bus import Poison, Transient
from domain.model_api import PURPOSE_HEADER
from domain.payloads import Usage

log = structlog.get_logger("gymforge.llm")

# $ per 1M tokens: (input, output, cached input), as published. The cached-input price is the provider's
# prompt-caching discount: a tenth of the input price for the gpt-5 family, a quarter for gpt-4.1 and o4-mini,
# a half for gpt-4o. Overridable per model through the `prices` setting.
CACHED_DISCOUNT: dict[str, float] = {"gpt-5": 0.1, "gpt-4.1": 0.25, "gpt-4o": 0.5, "o4-mini": 0.25}
_LIST_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0), "gpt-5-nano": (0.05, 0.4),
    "gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.4, 1.6), "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6),
    "o4-mini": (1.1, 4.4),
}
PriceEntry = tuple[float, float] | tuple[float, float, float]


def longest_prefix(model: str, names: Iterable[str]) -> str | None:
    """The longest name the model's id starts with: the API answers with a dated snapshot
    ("gpt-4o-mini-2024-07-18"), which "gpt-4o" must not price (17x too dear)."""
    prefixes = [m for m in names if model.startswith(m)]
    return max(prefixes, key=len) if prefixes else None


def full_price(model: str, entry: PriceEntry) -> tuple[float, float, float]:
    """An entry as (input, output, cached input): an entry without a cached price gets its family's discount
    (CACHED_DISCOUNT), or none (the input price) for a model of no known family."""
    if len(entry) == 3:
        return entry  # type: ignore[return-value]
    family = longest_prefix(model, CACHED_DISCOUNT)
    return entry[0], entry[1], entry[0] * (CACHED_DISCOUNT[family] if family else 1.0)


DEFAULT_PRICES: dict[str, tuple[float, float, float]] = {m: full_price(m, p) for m, p in _LIST_PRICES.items()}

UsageSink = Callable[[Usage], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str
    model: str
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6


@dataclass(frozen=True)
class Completion:
    text: str  # the reply's visible content: thinking (a `<think>` block) taken out
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    retries: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # normalised: see `tool_calls_of`
    reasoning: str = ""  # the model's thinking: reasoning_content / reasoning, or the content's <think> blocks
    finish_reason: str | None = None  # "stop", "length" (cut off), "tool_calls", ...
    cached_tokens: int = 0  # prompt tokens the provider served from its prefix cache
    reasoning_tokens: int = 0  # completion tokens spent thinking (counted in completion_tokens)
    model: str | None = None  # the model id the reply names (a dated snapshot), else the one asked for

    @property
    def cut_off(self) -> bool:
        """The reply hit the length limit: never to be read as complete."""
        return self.finish_reason == "length"


@dataclass
class Prices:
    table: dict[str, PriceEntry] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def per_million(self, model: str) -> tuple[float, float, float]:
        """(input, output, cached input) $ per 1M tokens for the model (zeros when it is not in the table)."""
        name = longest_prefix(model, self.table)
        return full_price(name, self.table[name]) if name is not None else (0.0, 0.0, 0.0)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """As providers bill: the prompt's cached tokens at the cached-input price, the rest at the input
        price, the completion (reasoning tokens included) at the output price."""
        inp, out, cached_in = self.per_million(model)
        cached = min(max(cached_tokens, 0), prompt_tokens)
        return ((prompt_tokens - cached) * inp + cached * cached_in + completion_tokens * out) / 1e6


@dataclass(frozen=True)
class RequestOptions:
    """A role's request options (agents/model_options.py); None = not sent. `extra_body` is merged into the
    body last (vLLM's `chat_template_kwargs`, a provider's own fields)."""

    reasoning_effort: str | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        sent = {"reasoning_effort": self.reasoning_effort, "max_completion_tokens": self.max_completion_tokens,
                "temperature": self.temperature}
        return {k: v for k, v in sent.items() if v is not None}


@dataclass(frozen=True)
class Models:
    """What the roles that call a model are given: the teacher's endpoint (proposer, coder, debugger), the
    solver's, and the price table their usage is costed with."""

    teacher: Endpoint
    solver: Endpoint
    prices: Prices = field(default_factory=Prices)

    def endpoint(self, kind: str) -> Endpoint:
        return self.solver if kind == "solver" else self.teacher


_SEMAPHORES: dict[str, asyncio.Semaphore] = {}


def _endpoint_semaphore(ep: Endpoint) -> asyncio.Semaphore:
    key = f"{ep.base_url}|{id(asyncio.get_running_loop())}"
    if key not in _SEMAPHORES:
        _SEMAPHORES[key] = asyncio.Semaphore(ep.concurrency)
    return _SEMAPHORES[key]


def _sdk() -> Any:
    """The openai SDK, imported on first use: it takes ~0.7 s, and every command that reads the settings
    imports the roles (and so this module)."""
    import openai

    return openai


RETRYABLE_4XX = (408, 409, 429)  # request timeout, lock timeout, rate limit: as the openai SDK's own policy


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _sdk().APITimeoutError | _sdk().APIConnectionError | _sdk().RateLimitError):
        return True
    return isinstance(exc, _sdk().APIStatusError) and (exc.status_code >= 500 or exc.status_code in RETRYABLE_4XX)


def retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None


def backoff(state: RetryCallState, base: float = 0.5, cap: float = 30.0) -> float:
    """Retry-After when the server gives one, else full-jitter exponential backoff."""
    exc = state.outcome.exception() if state.outcome else None
    hinted = retry_after(exc)
    if hinted is not None:
        return hinted
    return random.uniform(0, min(cap, base * 2 ** (state.attempt_number - 1)))


def url_auth(url: str) -> tuple[str, dict[str, str]]:
    """A base URL's `user:password@` as a Basic Authorization header, which replaces the API key's bearer one
    (as the SDK's default httpx client does; aiohttp refuses to send both), and the URL without it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return (urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])),
            {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()})


def public_url(url: str) -> str:
    """The URL without what may hold credentials (a `user:password@`, the query): fit for events and logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class LLM:
    """One role's model: `complete(messages, purpose=...)` -> Completion."""

    def __init__(self, endpoint: Endpoint, role: str, *, prices: Prices | None = None,
                 on_usage: UsageSink | None = None, backoff_base_s: float = 0.5,
                 options: RequestOptions | None = None) -> None:
        self.endpoint, self.role = endpoint, role
        self.options = options or RequestOptions()
        self.prices = prices or Prices()
        self.on_usage = on_usage
        self.backoff_base_s = backoff_base_s
        base_url, auth = url_auth(endpoint.base_url)
        self.client = _sdk().AsyncOpenAI(base_url=base_url, api_key=endpoint.api_key or "none", default_headers=auth,
                                         timeout=endpoint.timeout_s, max_retries=0, http_client=http_client())

    async def close(self) -> None:
        await self.client.close()

    async def complete(self, messages: list[dict[str, Any]], *, purpose: str, max_tokens: int | None = None,
                       temperature: float | None = None, seed: int | None = None,
                       tools: list[dict[str, Any]] | None = None,
                       response_format: dict[str, Any] | None = None) -> Completion:
        started, attempts = time.monotonic(), 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable), stop=stop_after_attempt(self.endpoint.max_retries + 1),
            wait=lambda s: backoff(s, self.backoff_base_s), reraise=True,
            before_sleep=lambda s: log.warning("model call retry", role=self.role, attempt=s.attempt_number,
                                               error=type(s.outcome.exception()).__name__ if s.outcome else None),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._call(messages, purpose, max_tokens=max_tokens, temperature=temperature,
                                                seed=seed, tools=tools, response_format=response_format)
        except _sdk().APIStatusError as exc:
            if is_retryable(exc):
                raise Transient(f"model endpoint failing after {attempts} tries: {exc.status_code}",
                                delay=retry_after(exc)) from None
            raise ModelRefused(f"model endpoint refused the request ({exc.status_code}): {exc.message}",
                               status_code=exc.status_code) from None
        except (_sdk().APITimeoutError, _sdk().APIConnectionError) as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""  # e.g. cannot connect to host
            raise Transient(f"model endpoint unreachable after {attempts} tries: {type(exc).__name__}{cause}") from None
        return await self._finish(response, started, attempts - 1)

    async def _call(self, messages: list[dict[str, Any]], purpose: str, **options: Any) -> Reply:
        """POST /chat/completions through the SDK's generic `post`, our JSON in and out: `create` would walk
        every message against the param TypedDicts, copy the body and build the response model (SDK
        `maybe_transform`, `construct`), most of a call's CPU in a long episode. Same request and errors."""
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": messages, **self.options.body()}
        body.update({k: v for k, v in options.items() if v is not None})
        body.update(self.options.extra_body)
        async with _endpoint_semaphore(self.endpoint):
            data = await self.client.post("/chat/completions", cast_to=object, content=json.dumps(body).encode(),
                                          options={"headers": {PURPOSE_HEADER: purpose}})
        try:  # the JSON body as decoded (cast_to=object), or the text when the answer was not JSON
            return parse_reply(data)
        except ValueError as exc:
            raise MalformedReply(f"model endpoint answered a malformed completion: {exc}") from None

    async def _finish(self, reply: Reply, started: float, retries: int) -> Completion:
        model = reply.model or self.endpoint.model
        cost = self.prices.cost(model, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens)
        done = Completion(text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                          cost_usd=cost,
                          latency_s=time.monotonic() - started, retries=retries, tool_calls=reply.tool_calls,
                          reasoning=reply.reasoning, finish_reason=reply.finish_reason,
                          cached_tokens=reply.cached_tokens, reasoning_tokens=reply.reasoning_tokens, model=model)
        if self.on_usage:
            await self.on_usage(Usage(role=self.role, model=model, endpoint=public_url(self.endpoint.base_url),
                                      prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                                      cost_usd=done.cost_usd, latency_s=done.latency_s, retries=retries,
                                      cached_tokens=reply.cached_tokens, reasoning_tokens=reply.reasoning_tokens))
        return done


@dataclass(frozen=True)
class Reply:
    """What a chat completion says that we use."""

    text: str  # the content without its thinking
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    model: str | None
    reasoning: str = ""
    finish_reason: str | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0


def parse_reply(data: Any) -> Reply:
    """A /chat/completions JSON body -> Reply; ValueError when it is not one.

    Thinking is read from `reasoning_content` (DeepSeek, vLLM's reasoning parsers) or `reasoning`
    (OpenRouter), and `<think>` blocks are taken out of the content (Qwen3, DeepSeek-R1 without a parser):
    the text parsed for actions, files and JSON never holds thinking. Tool calls are normalised
    (`tool_calls_of`); a tool call written in the text (Hermes-style `<tool_call>{...}</tool_call>`) counts
    as one when the message has none of its own."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        usage = data.get("usage") or {}
        content = message.get("content") or ""
        if not isinstance(content, str):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        thinking, text = replies.split_thinking(content)
        field_thinking = message.get("reasoning_content") or message.get("reasoning") or ""
        reasoning = "\n\n".join(t for t in (str(field_thinking).strip(), thinking) if t)
        calls = message.get("tool_calls") or []
        if not calls:
            text, calls = replies.text_tool_calls(text)
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return Reply(text=text, tool_calls=tool_calls_of(calls),
                     prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0), model=data.get("model"),
                     reasoning=reasoning, finish_reason=choice.get("finish_reason"),
                     cached_tokens=int(prompt_details.get("cached_tokens") or 0),
                     reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"no choices[0].message ({type(exc).__name__}: {exc})") from None


def tool_calls_of(calls: list[Any]) -> list[dict[str, Any]]:
    """Tool calls as OpenAI sends them, whatever the server sent: `arguments` a JSON string (an object given
    as an object, or a JSON string encoded twice, is re-encoded once; a string that is not JSON is kept as
    it is, for the parser to refuse), an `id` for every call (derived from its place and content when the
    server gave none: the answer to a call must name it)."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        args = args if args is not None else call.get("arguments", "")
        arguments = replies.canonical_arguments(args)
        name = str(fn.get("name") or call.get("name") or "")
        call_id = call.get("id") or "call_" + hashlib.sha256(f"{i}:{name}:{arguments}".encode()).hexdigest()[:16]
        out.append({"id": str(call_id), "type": call.get("type") or "function",
                    "function": {"name": name, "arguments": arguments}})
    return out


def http_client() -> Any:
    """The SDK over aiohttp (`openai[aiohttp]`) when installed: httpx's pool scans its connections on every
    request, which costs ~3x the CPU per call at a few hundred concurrent episodes. None: the SDK's default."""
    try:
        return _sdk().DefaultAioHttpClient()
    except RuntimeError:  # the extra is not installed
        return None


class MalformedReply(Transient):
    """The endpoint answered 200 with something that is not a chat completion: retried later, then dead-lettered."""


class ModelRefused(Poison):
    """The endpoint rejected the request for good (a 4xx other than 408, 409, 429): retrying will not help."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
