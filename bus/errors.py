"""The exceptions that decide what the consume loop does with a message (see bus/acks.py)."""


class BusError(Exception):
    """Base for bus errors."""


class Poison(BusError):
    """The message can never be handled (bad JSON, unknown type, invalid payload): term + dead letter."""


class Transient(BusError):
    """The message may succeed later (endpoint down, rate limited): nak with a growing delay."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class NatsUnavailable(BusError):
    """No NATS server answers at the configured URL (or the bus cannot be set up there)."""


class NatsRefused(NatsUnavailable):
    """A NATS server answers but will not take this client: credentials, TLS, certificates."""
