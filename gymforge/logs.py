"""structlog setup: shared processors; a console renderer on a TTY, JSON lines otherwise.

Agents bind role, subject, event id and trace id per message (agents/runtime.py) through contextvars,
so every line a handler logs carries them.

Secrets never reach a log line: every field (nested too), and then the rendered line itself, goes
through `Redactor`, which masks the known secret values (the settings' SecretStr fields, passed as
`secrets`, and the values of secret-looking environment variables such as OPENAI_API_KEY, HF_TOKEN,
GYMFORGE_NATS_PASSWORD) and anything shaped like a key (`sk-...`, `hf_...`, `Bearer ...`, a URL's `user:password@`). Tracebacks
are rendered without their frames' local variables, which is where an API key would sit. Lines from
the standard `logging` module (aiohttp, openai, asyncio, ...) are masked the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from pydantic import BaseModel, SecretStr

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MASK = "[redacted]"
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words
SECRET_ENV = re.compile(r"(API_KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?)$", re.IGNORECASE)
KEY_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{15,}"),  # OpenAI-style keys: sk-..., sk-proj-...
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),  # Hugging Face tokens
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE),  # Authorization header values
)
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)  # scheme://user:PASSWORD@
# asyncio says this for every TLS connection nats-py closes; it is noise on a one-line error
NOISE = ("returning true from eof_received() has no effect when using ssl",)


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets (OPENAI_API_KEY, HF_TOKEN, ...)."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if SECRET_ENV.search(k) and v]


def settings_secrets(settings: BaseModel) -> list[str]:
    """The values of a settings object's SecretStr fields, in its sections too."""
    out = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        for v in value.values() if isinstance(value, dict) else [value]:
            if isinstance(v, SecretStr) and v.get_secret_value():
                out.append(v.get_secret_value())
            elif isinstance(v, BaseModel):
                out.extend(settings_secrets(v))
    return out


class Redactor:
    """Masks known secret values and key-shaped strings in text and in any nesting of dicts and lists."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = {*self.secrets, *(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)}
        self.secrets = sorted(known, key=len, reverse=True)  # the longest first: one may contain another

    def text(self, s: str) -> str:
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        for pattern in KEY_PATTERNS:
            s = pattern.sub(MASK, s)
        return URL_PASSWORD.sub(rf"\g<1>{MASK}@", s)

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {self.value(k): self.value(x) for k, x in v.items()}
        if isinstance(v, list | tuple | set | frozenset):
            return [self.value(x) for x in v]
        if isinstance(v, bytes | bytearray):
            return self.text(bytes(v).decode("utf-8", errors="replace"))
        if isinstance(v, int | float | bool) or v is None:
            return v
        return self.text(repr(v) if isinstance(v, BaseException) else str(v))

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """The structlog processor (an exception still to render is left to the renderer, then masked)."""
        return {k: v if k == "exc_info" and not isinstance(v, str) else self.value(v) for k, v in event_dict.items()}

    def wrap(self, renderer: Any) -> Any:
        """A renderer whose output (the whole line, tracebacks included) is masked once more."""

        def render(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
            return self.text(str(renderer(logger, method, event_dict)))

        return render


class RedactingFilter(logging.Filter):
    """Masks secrets in standard-library log records (message, arguments and traceback)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: mask what there is
            message = f"{record.msg} {record.args}"
        if record.name == "asyncio" and message in NOISE:
            return False
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_redactor = Redactor()


def redactor() -> Redactor:
    """The process' redactor (secrets can be added to it after configure)."""
    return _redactor


def _traceback_formatter() -> Any:
    """Rich tracebacks without locals (where an API key would sit) when rich is installed, else plain ones."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(show_locals=False)


def configure(level: str = "info", fmt: str = "auto", stream: Any = None, secrets: Iterable[str] = ()) -> None:
    """Set up structlog and logging; `secrets` are values to mask besides the secret-looking env vars."""
    global _redactor
    stream = stream or sys.stderr
    _redactor = Redactor([*env_secrets(), *secrets])
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_console:
        tail: list[Any] = []
        renderer: Any = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(),
            exception_formatter=_traceback_formatter(),
        )
    else:
        tail = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, *tail, _redactor, _redactor.wrap(renderer)],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(LEVELS.get(level, logging.INFO), logging.WARNING), stream=stream)
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(f)
        handler.addFilter(RedactingFilter(_redactor))
