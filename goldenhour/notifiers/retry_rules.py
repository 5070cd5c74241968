"""When a message that failed is tried again, and when the dispatcher stops trying: pure
decisions over one message row, with `now` (the database's) passed in.

A message is retried for as long as its step matters, never given up after a number of tries: an
alert's message until the alert is resolved (a reminder, until it is acknowledged); a
stand-down, a notice that a contact could not be reached, or a message to the operations
contacts (no alert) for a generous day. Webhook deliveries keep a bounded number of
tries, because the subscription's health (disabling it, telling its owners) is counted in them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from goldenhour.contracts.alert_kinds import is_renotify_key
from goldenhour.infra.backoff import delay

BASE_S = 0.5
BACKOFF_CAP_S = 60.0
# Messages that outlive their alert's acknowledgement and resolution: they still say something
# a person needs to hear, so they are retried until this long after they were written.
LASTING_STEPS = ("stand_down",)
LASTING_PREFIXES = ("unreachable.",)
LASTING_FOR = timedelta(hours=24)
WEBHOOK_MAX_ATTEMPTS = 10
# How long the provider may fail to say whether an earlier, ambiguous attempt reached it before
# the message is sent again regardless: a possible second copy of an alert is far less harm
# than none, and a look that cannot complete must not hold a due message back for ever.
LOOK_PATIENCE = timedelta(seconds=60)


@dataclass(frozen=True)
class Attempted:
    """One message row and its alert, as far as these rules look at them."""

    channel: str
    step_key: str
    attempts: int  # tries so far, the current one included
    created_at: datetime
    alert_id: uuid.UUID | None = None
    alert_status: str | None = None  # open | acknowledged | resolved; None without an alert


@dataclass(frozen=True)
class Decision:
    """What to do with a message whose try failed (or before a retry is sent)."""

    action: Literal["retry", "cancel", "fail"]
    reason: str | None = None
    wait_s: float = 0.0


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before the next try: exponential with full jitter, at least the provider's
    Retry-After, which is capped too, so a provider asking for an hour cannot stall an alert."""
    honoured = min(retry_after or 0.0, BACKOFF_CAP_S)
    return max(honoured, delay(attempts, BASE_S, BACKOFF_CAP_S, rng))


def lasting(m: Attempted) -> bool:
    """Whether the message outlives its alert's acknowledgement and resolution."""
    return (
        m.alert_id is None or m.step_key in LASTING_STEPS or m.step_key.startswith(LASTING_PREFIXES)
    )


def stop(m: Attempted, now: datetime) -> Decision | None:
    """Why no more tries of the message are worth making, or None while its step matters."""
    if m.channel == "webhook":
        if m.attempts >= WEBHOOK_MAX_ATTEMPTS:
            return Decision("fail", f"gave up after {m.attempts} attempts")
        return None
    if lasting(m):
        if now - m.created_at >= LASTING_FOR:
            hours = LASTING_FOR.total_seconds() / 3600
            return Decision("fail", f"gave up after {m.attempts} attempts in {hours:g} h")
        return None
    if m.alert_status == "resolved":
        return Decision("cancel", "the alert was resolved before the message could be sent")
    if m.alert_status == "acknowledged" and is_renotify_key(m.step_key):
        # A reminder says "not yet acknowledged": once someone has, it is no longer true. A
        # step's own message still matters after an acknowledgement: the clock already decided
        # the step (an `unless_acknowledged` one acknowledged before it fell due never fires),
        # and the police control room must hear of a missing child whoever acknowledged first.
        return Decision("cancel", "the alert was acknowledged before the reminder could be sent")
    return None


def after_failure(
    m: Attempted, retry_after: float | None, now: datetime, rng: random.Random
) -> Decision:
    """A retryable failure: retry after a backoff, or stop because the step no longer matters."""
    stopped = stop(m, now)
    if stopped is not None:
        return stopped
    return Decision("retry", wait_s=backoff(m.attempts, retry_after, rng))


def look_abandoned(
    failing_since: datetime | None, now: datetime, patience: timedelta = LOOK_PATIENCE
) -> bool:
    """Whether the provider has failed for `patience` to answer whether an earlier attempt
    left the message with it (`failing_since`: the first of the looks that failed since it
    last answered)."""
    return failing_since is not None and now - failing_since >= patience
