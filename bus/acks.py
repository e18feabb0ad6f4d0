"""The one ack policy. A pure decision, then one function that applies it to a message.

    success                          -> ack (after the outputs are published)
    Transient / unexpected error     -> nak with a growing delay; dead letter once deliveries run out
    Poison                           -> term + dead letter with the reason
    cancelled (shutdown)             -> nothing: the message is redelivered after ack_wait
    delivered more than max_deliver  -> term + dead letter, without running the handler again
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

import structlog
from nats.aio.msg import Msg

from bus.errors import Poison, Transient

log = structlog.get_logger("gymforge.bus")


class Action(Enum):
    ACK = "ack"
    NAK = "nak"
    TERM = "term"
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float | None = None
    dead_letter: str | None = None  # the reason, when the message goes to the dead-letter subject


@dataclass(frozen=True)
class RetryPolicy:
    max_deliver: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, deliveries: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(0, deliveries - 1))


ACK = Decision(Action.ACK)  # decisions are immutable: the common one is shared


def decide(error: BaseException | None, deliveries: int, policy: RetryPolicy) -> Decision:
    """What to do with a message whose handler ended with `error` (None = success)."""
    if error is None:
        return ACK
    if isinstance(error, asyncio.CancelledError):
        return Decision(Action.NONE)
    if isinstance(error, Poison):
        return Decision(Action.TERM, dead_letter=str(error))
    if deliveries >= policy.max_deliver:
        reason = f"failed {deliveries} deliveries, last error: {describe(error)}"
        return Decision(Action.TERM, dead_letter=reason)
    delay = error.delay if isinstance(error, Transient) and error.delay is not None else None
    return Decision(Action.NAK, delay=delay if delay is not None else policy.delay(deliveries))


def before_handling(deliveries: int, policy: RetryPolicy) -> Decision | None:
    """A message delivered more often than allowed (its handler kept crashing) is not run again."""
    if deliveries > policy.max_deliver:
        return Decision(Action.TERM, dead_letter=f"delivered {deliveries} times without an ack (handler crashed?)")
    return None


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def apply(msg: Msg, decision: Decision) -> None:
    """Settle the message. A failure here (connection lost) means it will be redelivered: logged, not raised."""
    try:  # not contextlib.suppress: this runs once per message
        if decision.action is Action.ACK:
            await msg.ack()
        elif decision.action is Action.NAK:
            await msg.nak(delay=decision.delay)
        elif decision.action is Action.TERM:
            await msg.term()
    except Exception as exc:
        log.warning("could not settle the message; it will be redelivered", action=decision.action.value,
                    subject=msg.subject, error=describe(exc))
