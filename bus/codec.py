"""The event envelope and its encoding: pure functions, no I/O.

An envelope wraps a typed payload with the id, type, time, trace id (the topic it descends from), parent
id, producer and schema version. Ids are deterministic: an output's id is derived from its parent's id,
its type and its place among the parent's outputs, so a handler that runs twice publishes the same ids.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.errors import Poison

ID_LEN = 32
SCHEMA_VERSION = 1
SUBJECT_PREFIX = "gf"

P = TypeVar("P", bound=BaseModel)
PayloadTypes = Mapping[str, type[BaseModel]]  # event type -> its payload model (given by the layer above)


def subject_for(event_type: str) -> str:
    """An event type's subject: `topic.proposed` -> `gf.topic.proposed`."""
    return f"{SUBJECT_PREFIX}.{event_type}"


def type_of(subject: str) -> str:
    prefix = SUBJECT_PREFIX + "."
    return subject[len(prefix):] if subject.startswith(prefix) else subject


class DeadLetter(BaseModel):
    """The bus's own record of a message that can never be handled (`dead.<role>`)."""

    model_config = ConfigDict(extra="forbid")

    role: str
    reason: str
    subject: str
    data: str  # the original message body, utf-8 (undecodable bytes replaced) or base64 if binary
    data_encoding: Literal["utf-8", "base64"] = "utf-8"
    headers: dict[str, str] = Field(default_factory=dict)
    deliveries: int = 1
    stream_seq: int | None = None


def payload_model(types: PayloadTypes, event_type: str) -> type[BaseModel] | None:
    """The model for an event type; every `dead.<role>` shares DeadLetter."""
    if event_type.startswith("dead."):
        return DeadLetter
    return types.get(event_type)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=8, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    time: datetime
    trace_id: str = Field(min_length=8, max_length=200)
    parent_id: str | None = None
    producer: str = "unknown"
    schema_version: int = SCHEMA_VERSION
    payload: dict[str, Any] | None = None
    payload_ref: str | None = None  # object-store name when the payload travels by reference


@dataclass(frozen=True)
class Event:
    """A decoded event: the envelope and its validated, typed payload."""

    envelope: Envelope
    payload: BaseModel
    subject: str = ""
    stream_seq: int | None = None
    deliveries: int = 1
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def trace_id(self) -> str:
        return self.envelope.trace_id

    def payload_as(self, model: type[P]) -> P:
        """The payload as the model the handler consumes; Poison when it is another type."""
        if not isinstance(self.payload, model):
            raise Poison(f"{self.type} carries {type(self.payload).__name__}, not {model.__name__}")
        return self.payload


def derive_id(parent_id: str, event_type: str, key: str | int) -> str:
    """sha256(parent, type, key): the same inputs always name the same event."""
    digest = hashlib.sha256(f"{parent_id}\x1f{event_type}\x1f{key}".encode()).hexdigest()
    return digest[:ID_LEN]


def new_root_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def make_envelope(
    event_type: str,
    payload: BaseModel,
    *,
    producer: str,
    parent: Envelope | None = None,
    key: str | int = 0,
    event_id: str | None = None,
    new_trace: bool = False,
) -> Envelope:
    """Wrap a payload. With a parent, the id is derived from it; otherwise a fresh root id is used."""
    if event_id is None:
        event_id = derive_id(parent.id, event_type, key) if parent else new_root_id()
    trace_id = event_id if (new_trace or parent is None) else parent.trace_id
    return Envelope(
        id=event_id,
        type=event_type,
        time=now(),
        trace_id=trace_id,
        parent_id=parent.id if parent else None,
        producer=producer,
        payload=payload.model_dump(mode="json"),
    )


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json(exclude_none=True).encode()


def decode_envelope(data: bytes) -> Envelope:
    """Parse the envelope only (the payload may still be a reference). Raises Poison with the reason.

    The fast path parses and validates in one pass, strictly: it accepts exactly the canonical encoding
    `encode` writes (JSON ints, ISO strings). Anything else takes the step-by-step path, which coerces
    like pydantic's lax mode and names the first thing wrong.
    """
    try:
        env = Envelope.model_validate_json(data, strict=True)
    except ValidationError:
        return _decode_envelope_slow(data)
    if env.schema_version != SCHEMA_VERSION:
        raise Poison(f"unsupported schema_version {env.schema_version!r} (this build reads {SCHEMA_VERSION})")
    if env.payload is None and env.payload_ref is None:
        raise Poison("envelope has neither payload nor payload_ref")
    return env


def _decode_envelope_slow(data: bytes) -> Envelope:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Poison(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise Poison("not a JSON object")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise Poison(f"unsupported schema_version {version!r} (this build reads {SCHEMA_VERSION})")
    try:
        env = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise Poison(f"bad envelope: {_first_error(exc)}") from None
    if env.payload is None and env.payload_ref is None:
        raise Poison("envelope has neither payload nor payload_ref")
    return env


def validate_payload(
    envelope: Envelope, types: PayloadTypes, payload: dict[str, Any] | None = None, *, subject: str = "",
    stream_seq: int | None = None, deliveries: int = 1, headers: dict[str, str] | None = None,
) -> Event:
    """Turn an envelope (with its payload resolved) into a typed Event, with the delivery's details when
    it came from a stream. Raises Poison with the reason."""
    model = payload_model(types, envelope.type)
    if model is None:
        raise Poison(f"unknown event type {envelope.type!r}")
    body = envelope.payload if payload is None else payload
    try:
        typed = model.model_validate(body)
    except ValidationError as exc:
        raise Poison(f"invalid {envelope.type} payload: {_first_error(exc)}") from None
    if payload is not None:
        envelope = envelope.model_copy(update={"payload": payload, "payload_ref": None})
    return Event(envelope=envelope, payload=typed, subject=subject, stream_seq=stream_seq, deliveries=deliveries,
                 headers={} if headers is None else headers)


def decode(data: bytes, types: PayloadTypes, expected_type: str | None = None) -> Event:
    """Decode an inline event; checks that the subject's type matches the envelope's."""
    env = decode_envelope(data)
    if expected_type is not None and env.type != expected_type:
        raise Poison(f"envelope type {env.type!r} does not match subject type {expected_type!r}")
    if env.payload_ref is not None:
        raise Poison("payload is by reference; resolve it with the object store first")
    return validate_payload(env, types)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err.get('msg', 'invalid')}{more}"
