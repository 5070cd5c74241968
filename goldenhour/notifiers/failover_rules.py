"""When a contact is called instead of texted, and when a person is told it could not be
reached: pure decisions over one contact's messages for one step, with `now` passed in."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# A message the provider has: the contact was reached on that channel.
ACCEPTED = frozenset({"sent", "delivered"})
IN_FLIGHT = frozenset({"pending", "sending"})
# Steps whose messages never fail over: the notice that a contact is unreachable goes by SMS and
# email already, and a stand-down after the alert closed is not worth a call.
UNREACHABLE_PREFIX = "unreachable."
NO_FAILOVER_STEPS = ("stand_down",)
# A neighbour's shared alert is minimised by design: its failover would carry the full alert.
SHARED_PREFIX = "share"
# What the failover sends besides the call, when the step did not already.
FAILOVER_CHANNELS = ("voice", "email")

Group = tuple[uuid.UUID, str, str]  # (alert_id, step_key, contact_id)


@dataclass(frozen=True)
class Message:
    """One message row, as far as these rules look at it."""

    notification_id: uuid.UUID
    alert_id: uuid.UUID
    step_key: str
    contact_id: str
    channel: str
    status: str
    created_at: datetime
    failover_of: uuid.UUID | None = None
    last_error: str | None = None

    @property
    def group(self) -> Group:
        return (self.alert_id, self.step_key, self.contact_id)


def unreachable_step(contact_id: str) -> str:
    """The step key of the notice that contact_id could not be reached (once per alert)."""
    return f"{UNREACHABLE_PREFIX}{contact_id}"


def grouped(messages: Iterable[Message]) -> dict[Group, list[Message]]:
    """Messages by (alert, step, contact), oldest first."""
    groups: dict[Group, list[Message]] = defaultdict(list)
    for m in sorted(messages, key=lambda m: (m.created_at, m.channel)):
        groups[m.group].append(m)
    return dict(groups)


def needs_failover(sms: Message, group: list[Message], now: datetime, after: timedelta) -> bool:
    """Whether this SMS of an open alert should be followed by a call (and an email): the
    provider has not accepted it `after` its creation, or it failed for good; once per step
    and contact (no call in the group yet)."""
    if sms.channel != "sms" or sms.failover_of is not None:
        return False
    if sms.step_key.startswith((UNREACHABLE_PREFIX, SHARED_PREFIX)) or (
        sms.step_key in NO_FAILOVER_STEPS
    ):
        return False
    if any(m.channel == "voice" for m in group):
        return False
    if sms.status == "failed":
        return True
    return sms.status in IN_FLIGHT and now - sms.created_at >= after


@dataclass(frozen=True)
class Unreachable:
    """A contact a person must be told about, and the messages that notice covers."""

    group: Group
    reached: bool  # another channel got through; one of them still failed for good
    covers: tuple[uuid.UUID, ...]  # the failed or never-accepted messages
    why: str  # per channel, what happened: "sms: pending (twilio HTTP 500…); voice: failed"


def _why(group: list[Message]) -> str:
    parts = []
    for m in group:
        error = f" ({m.last_error[:80]})" if m.last_error else ""
        parts.append(f"{m.channel} {m.status}{error}")
    return "; ".join(parts)


def unreachable(
    group: list[Message], now: datetime, after: timedelta, alert_open: bool = True
) -> Unreachable | None:
    """Whether the contact of this group must be reported unreachable now.

    Yes when no channel got through and either every channel has failed for good or (while
    the alert is open, not yet acknowledged) `after` has passed since the step's first
    message; and yes, once nothing is in flight any more, when a message failed for good even
    though another channel got through (a wrong number in the directory is for a person to
    fix)."""
    live = [m for m in group if m.status != "cancelled"]
    if not live:
        return None
    reached = any(m.status in ACCEPTED for m in live)
    failed = [m for m in live if m.status == "failed"]
    in_flight = [m for m in live if m.status in IN_FLIGHT]
    if reached:
        if not failed or in_flight:
            return None
        covers = failed
    else:
        first = min(m.created_at for m in live)
        if in_flight and (not alert_open or now - first < after):
            return None
        covers = live
    return Unreachable(
        group=live[0].group,
        reached=reached,
        covers=tuple(m.notification_id for m in covers),
        why=_why(live),
    )
