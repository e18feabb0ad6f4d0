"""Connection, stream and consumer setup, publishing with deterministic ids, payloads by reference."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.object_store import ObjectStore

from bus.codec import Envelope, Event, PayloadTypes, decode_envelope, encode, subject_for, validate_payload
from bus.errors import NatsRefused, NatsUnavailable, Poison
from bus.server import url_answers

MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True)
class BusSettings:
    url: str = "nats://127.0.0.1:4222"
    stream: str = "GYMFORGE"
    subjects: tuple[str, ...] = ("gf.>",)
    duplicate_window_s: float = 2 * 3600.0  # covers redelivery of long episodes
    max_age_s: float = 0.0  # 0 = keep the whole history
    artifacts_bucket: str = "gf-artifacts"
    inline_limit: int = 256 * 1024  # payloads above this many bytes travel by reference
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout_s: float = 3.0


@dataclass
class ConsumerSpec:
    durable: str
    filter_subjects: list[str]
    ack_wait_s: float = 60.0
    max_ack_pending: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)


def _tls_context(s: BusSettings) -> ssl.SSLContext | None:
    if not (s.tls_ca or s.tls_cert):
        return None
    try:
        ctx = ssl.create_default_context(cafile=s.tls_ca)
        if s.tls_cert:
            ctx.load_cert_chain(s.tls_cert, s.tls_key)
    except OSError as exc:  # a missing or unreadable file; ssl.SSLError (not PEM) is one too
        raise NatsRefused(f"cannot load the NATS TLS files (ca {s.tls_ca}, cert {s.tls_cert}, "
                              f"key {s.tls_key}): {exc.strerror or exc}") from None
    return ctx


AUTH_ERRORS = (nats.errors.AuthorizationError, nats.errors.InvalidUserCredentialsError)
TLS_ERRORS = (ssl.SSLError, nats.errors.SecureConnRequiredError, nats.errors.SecureConnWantedError,
              nats.errors.SecureConnFailedError)


def _refused(url: str, exc: BaseException) -> NatsUnavailable:
    """Why the NATS server at `url`, which answers, did not take the connection, in one line: NatsRefused
    for credentials and TLS (the client's to fix), NatsUnavailable for anything else."""
    text = str(exc).removeprefix("nats: ").strip("'\" ") or type(exc).__name__
    if isinstance(exc, TLS_ERRORS):
        why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or text
        return NatsRefused(f"TLS with NATS at {url} failed ({why}): check the CA certificate (tls_ca) and the "
                           "client certificate")
    if isinstance(exc, AUTH_ERRORS) or "authorization" in text.lower():  # a server's -ERR may arrive as text
        return NatsRefused(f"NATS at {url} refused the credentials ({text}): check the user and password, token "
                           "or creds file")
    return NatsUnavailable(f"cannot connect to NATS at {url}: {text}")


class Bus:
    """One NATS connection with JetStream, the gymforge stream and the artifacts object store."""

    def __init__(self, nc: Client, settings: BusSettings, types: PayloadTypes) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.settings = settings
        self.types = types  # event type -> payload model: what this connection can decode
        self._artifacts: ObjectStore | None = None

    @classmethod
    async def connect(cls, settings: BusSettings, *, types: PayloadTypes, name: str = "gymforge",
                      setup: bool = True) -> Bus:
        opts: dict[str, Any] = {
            "servers": [settings.url], "name": name, "connect_timeout": settings.connect_timeout_s,
            "allow_reconnect": True, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.5,
        }
        opts.update({k: v for k, v in {
            "user": settings.user, "password": settings.password, "token": settings.token,
            "user_credentials": settings.creds_file, "tls": _tls_context(settings),
        }.items() if v})

        connecting = True

        async def _on_error(exc: Exception) -> None:  # silences nats-py's default error printing
            if connecting:  # the first connect fails now, with its reason, rather than retrying forever
                raise exc

        # a fast, clear failure instead of nats-py reconnecting forever
        if not await url_answers(settings.url, timeout=settings.connect_timeout_s):
            raise NatsUnavailable(f"cannot reach NATS at {settings.url}: nothing answers there")
        nc = Client()
        try:
            await nc.connect(**opts, error_cb=_on_error)
        except Exception as exc:  # nats raises several unrelated types here (bad credentials, TLS, ...)
            with contextlib.suppress(Exception):  # bounded: after a failed TLS handshake close() never returns
                await asyncio.wait_for(nc.close(), 1.0)
            raise _refused(settings.url, exc) from None
        connecting = False
        if opts.get("tls") and not nc._server_info.get("tls_required"):  # nats-py would go on in plaintext
            await nc.close()
            raise NatsRefused(f"TLS is configured but NATS at {settings.url} does not require it: refusing "
                                  "to send credentials and events in plaintext")
        bus = cls(nc, settings, types)
        if setup:
            await bus.ensure_stream()
        return bus

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.drain()

    # --- setup ------------------------------------------------------------------------------

    def stream_config(self) -> api.StreamConfig:
        s = self.settings
        return api.StreamConfig(
            name=s.stream, subjects=list(s.subjects), storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, duplicate_window=s.duplicate_window_s,
            max_age=s.max_age_s, allow_direct=True,
        )

    async def ensure_stream(self) -> None:
        """Create the stream, or apply a changed config to the existing one."""
        config = self.stream_config()
        try:
            await self.js.stream_info(config.name)  # type: ignore[arg-type]
        except NotFoundError:
            await self.js.add_stream(config)
        else:
            await self.js.update_stream(config)

    async def ensure_consumer(self, spec: ConsumerSpec) -> None:
        """A durable pull consumer shared by every replica of a role; created or updated in place.

        max_deliver is unlimited on the server: the consume loop dead-letters past its own limit, so a
        message that kills its handler every time still ends in the dead-letter subject.
        """
        config = api.ConsumerConfig(
            name=spec.durable, durable_name=spec.durable, filter_subjects=spec.filter_subjects,
            ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_s, max_deliver=-1, max_ack_pending=spec.max_ack_pending,
            max_waiting=512, **spec.extra,
        )
        try:
            await self.js.add_consumer(self.settings.stream, config)
        except BadRequestError as exc:
            raise NatsUnavailable(
                f"consumer {spec.durable} exists with a config that cannot be changed in place ({exc.description}); "
                f"delete it with `nats consumer rm {self.settings.stream} {spec.durable}` and restart"
            ) from None

    async def artifacts(self) -> ObjectStore:
        if self._artifacts is None:
            try:
                self._artifacts = await self.js.object_store(self.settings.artifacts_bucket)
            except Exception:
                self._artifacts = await self.js.create_object_store(self.settings.artifacts_bucket)
        return self._artifacts

    # --- publish ----------------------------------------------------------------------------

    async def publish(self, envelope: Envelope, *, msg_id: str | None = None) -> api.PubAck:
        """Publish with the envelope id as Nats-Msg-Id; large payloads go to the object store first."""
        subject, data, headers = self._inline(envelope, msg_id) or await self._by_reference_prepared(envelope, msg_id)
        return await self.js.publish(subject, data, headers=headers)

    async def publish_all(self, envelopes: Sequence[Envelope]) -> list[api.PubAck]:
        """Publish several envelopes and wait until JetStream has acknowledged every one.

        They leave in order (any object-store offloads happen first, one after another) and their PubAcks
        are awaited together rather than one round trip after another. If any fails, the first error is
        raised once all have settled: those that went through stay published (their ids dedup a retry).
        """
        if len(envelopes) <= 1:  # the common cases, without the extra tasks of the general one
            return [await self.publish(envelopes[0])] if envelopes else []
        prepared = [self._inline(env) or await self._by_reference_prepared(env) for env in envelopes]
        results = await asyncio.gather(*(self.js.publish(subject, data, headers=headers)
                                         for subject, data, headers in prepared), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results  # type: ignore[return-value]

    def _inline(self, envelope: Envelope, msg_id: str | None = None) -> tuple[str, bytes, dict[str, str]] | None:
        """The subject, body and headers to publish, or None when the payload must go by reference."""
        data = encode(envelope)
        if len(data) > self.settings.inline_limit and envelope.payload is not None:
            return None
        return subject_for(envelope.type), data, {MSG_ID_HEADER: msg_id or envelope.id}

    async def _by_reference_prepared(
        self, envelope: Envelope, msg_id: str | None = None,
    ) -> tuple[str, bytes, dict[str, str]]:
        data = encode(await self._by_reference(envelope))
        return subject_for(envelope.type), data, {MSG_ID_HEADER: msg_id or envelope.id}

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> api.PubAck:
        return await self.js.publish(subject, data, headers=headers)

    async def _by_reference(self, envelope: Envelope) -> Envelope:
        body = json.dumps(envelope.payload, separators=(",", ":"), sort_keys=True).encode()
        name = "payload/" + hashlib.sha256(body).hexdigest()
        store = await self.artifacts()
        try:
            await store.get_info(name)
        except Exception:
            await store.put(name, body)
        return envelope.model_copy(update={"payload": None, "payload_ref": name})

    # --- decode -----------------------------------------------------------------------------

    async def resolve(
        self, data: bytes, expected_type: str | None = None, *, subject: str = "", stream_seq: int | None = None,
        deliveries: int = 1, headers: dict[str, str] | None = None,
    ) -> Event:
        """Decode a message body into a typed Event, fetching a by-reference payload. Raises Poison.

        The keywords are the delivery's details, carried into the Event as they are.
        """
        env = decode_envelope(data)
        if expected_type is not None and env.type != expected_type:
            raise Poison(f"envelope type {env.type!r} does not match subject type {expected_type!r}")
        payload = None if env.payload_ref is None else await self._referenced_payload(env.payload_ref)
        return validate_payload(env, self.types, payload, subject=subject, stream_seq=stream_seq, deliveries=deliveries,
                                headers=headers)

    async def _referenced_payload(self, name: str) -> Any:
        store = await self.artifacts()
        try:
            result = await store.get(name)
        except NotFoundError:
            raise Poison(f"payload_ref {name!r} not found in the object store") from None
        try:
            return json.loads(result.data or b"")
        except json.JSONDecodeError as exc:
            raise Poison(f"payload_ref {name!r} is not JSON: {exc}") from None
