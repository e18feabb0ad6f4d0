"""NATS JetStream plumbing: knows nothing of the project above it (payload models are given to it)."""

from bus.acks import RetryPolicy
from bus.codec import (
    SCHEMA_VERSION,
    DeadLetter,
    Envelope,
    Event,
    PayloadTypes,
    decode,
    derive_id,
    encode,
    make_envelope,
    subject_for,
    type_of,
)
from bus.connection import Bus, BusSettings, ConsumerSpec
from bus.consume import Consumer, publish_dead_letter
from bus.errors import BusError, NatsRefused, NatsUnavailable, Poison, Transient
from bus.server import EmbeddedNats

__all__ = [
    "SCHEMA_VERSION", "Bus", "BusError", "BusSettings", "Consumer", "ConsumerSpec", "DeadLetter", "EmbeddedNats",
    "Envelope", "Event", "NatsRefused", "NatsUnavailable", "PayloadTypes", "Poison", "RetryPolicy", "Transient", "decode",
    "derive_id", "encode", "make_envelope", "publish_dead_letter", "subject_for", "type_of",
]
