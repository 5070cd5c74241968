"""The one writer of `notifications` rows: queueing new messages, cancelling an alert's pending
ones, and every change of a message's state as the dispatcher sends it.

The escalation clock, shared alerts, the failover, subscription health and dead letters all
queue through `queue`, so a message is written one way wherever it comes from: pending, due at
`at`, and at most once per (alert, step, contact, channel), or per (step, contact, channel) for
an operations notice, which has no alert.

One clock: every lease and due time is the database's `now()`, never a dispatcher's own, so
two dispatchers whose clocks disagree see the same leases. Every claim (first send, retry,
take-over) increments `claim` and returns it; the fence and every mark present it, so a holder
whose lease was taken over can neither mark the row nor, once it sees that, send.

Each function takes the caller's connection (or a pool, for a statement that stands alone), so
it lands in the caller's transaction; auditing a change is the caller's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

import asyncpg

from goldenhour.infra import tracing

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
"""A connection, or a pool that runs the statement on one of its own outside any transaction."""


@dataclass(frozen=True)
class Outgoing:
    """One message to queue: to whom, by which channel, saying what."""

    step_key: str
    contact_id: str
    org_code: str
    channel: str
    address: str
    subject: str
    body: str
    subscription_id: uuid.UUID | None = None
    failover_of: uuid.UUID | None = None
    notification_id: uuid.UUID = field(default_factory=uuid.uuid4)


_INSERT = """
INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id, org_code,
                           channel, address, subject, body, status, next_attempt_at, created_at,
                           subscription_id, failover_of, correlation_id)
SELECT n.id, $1, $2, n.step_key, n.contact_id, n.org_code, n.channel, n.address, n.subject,
       n.body, 'pending', $3, $3, n.subscription_id, n.failover_of, $14
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[], $12::uuid[], $13::uuid[])
     AS n(id, step_key, contact_id, org_code, channel, address, subject, body, subscription_id,
          failover_of)
"""
_RETURNING = "RETURNING notification_id, step_key, contact_id, channel"
# Each key names its own index, so a clash on anything else (the primary key) still raises.
_QUEUE_FOR_ALERT = (
    _INSERT + "ON CONFLICT (alert_id, step_key, contact_id, channel) DO NOTHING " + _RETURNING
)
_QUEUE_OPERATIONS = (
    _INSERT
    + "ON CONFLICT (step_key, contact_id, channel) WHERE alert_id IS NULL DO NOTHING "
    + _RETURNING
)


async def queue(
    conn: asyncpg.Connection,
    alert_id: uuid.UUID | None,
    child_id: str | None,
    messages: Sequence[Outgoing],
    at: datetime,
) -> list[asyncpg.Record]:
    """Queue `messages` in one statement, inside the caller's transaction, under the correlation
    id bound where they are decided (infra/tracing.py). Returns the rows written
    (`notification_id`, `step_key`, `contact_id`, `channel`); a message already queued is left
    as it is and not returned."""
    if not messages:
        return []
    return await conn.fetch(
        _QUEUE_OPERATIONS if alert_id is None else _QUEUE_FOR_ALERT,
        alert_id,
        child_id,
        at,
        [m.notification_id for m in messages],
        [m.step_key for m in messages],
        [m.contact_id for m in messages],
        [m.org_code for m in messages],
        [m.channel for m in messages],
        [m.address for m in messages],
        [m.subject for m in messages],
        [m.body for m in messages],
        [m.subscription_id for m in messages],
        [m.failover_of for m in messages],
        tracing.current(),
    )


_CANCEL_PENDING = """
UPDATE notifications SET status = 'cancelled', updated_at = now()
WHERE alert_id = $1 AND status = 'pending'
"""


async def cancel_pending(conn: Conn, alert_id: uuid.UUID) -> None:
    """Cancel the alert's messages not yet claimed (the alert is resolved)."""
    await conn.execute(_CANCEL_PENDING, alert_id)


# --- claims -----------------------------------------------------------------------------------

# The row, its alert's state (whether the step still matters) and the database's now.
_WITH_ALERT = """
SELECT c.*, a.status AS alert_status, now() AS db_now
FROM c LEFT JOIN alerts a ON a.alert_id = c.alert_id
"""

# $3: the sweep's now (itself read from the database), or NULL for the database's now.
_CLAIM_DUE = (
    """
WITH c AS (
    UPDATE notifications SET status = 'sending', attempts = attempts + 1, claim = claim + 1,
           lease_until = now() + make_interval(secs => $2), updated_at = now()
    WHERE notification_id = $1 AND status = 'pending'
      AND next_attempt_at <= COALESCE($3, now())
    RETURNING *
)"""
    + _WITH_ALERT
)

# A lease that ran out (its dispatcher died or stalled mid-send) is taken over by one claimer,
# and not before the provider has had time to finish what an ambiguous attempt started. What
# the dead holder's attempt did is unknown: `look_after` records that, so this and every later
# attempt asks the provider first, even when this one's look fails.
_CLAIM_EXPIRED = (
    """
WITH c AS (
    UPDATE notifications SET attempts = attempts + 1, claim = claim + 1,
           lease_until = now() + make_interval(secs => $2), updated_at = now(),
           look_after = COALESCE(look_after, now())
    WHERE notification_id = $1 AND status = 'sending' AND lease_until < COALESCE($3, now())
      AND (look_after IS NULL OR look_after <= COALESCE($3, now()))
    RETURNING *
)"""
    + _WITH_ALERT
)

_TOUCH_STALE_SENT = """
UPDATE notifications SET updated_at = now() WHERE notification_id IN (
    SELECT notification_id FROM notifications WHERE status = 'sent'
      AND updated_at < $1 AND channel = ANY($2)
    ORDER BY updated_at LIMIT 200 FOR UPDATE SKIP LOCKED)
RETURNING notification_id, channel, provider_id
"""

_LOOK_ANSWERED = """
UPDATE notifications SET look_failed_at = NULL, updated_at = now()
WHERE notification_id = $1 AND claim = $2 AND status = 'sending'
"""

# Just before the provider is called: the claim must still be current and its lease unexpired
# by the database's clock; the lease is stretched to outlast the send, so nobody takes over a
# request still on its way. $4: the send goes although the provider could not say whether an
# earlier attempt reached it.
_FENCE = """
UPDATE notifications SET lease_until = GREATEST(lease_until, now() + make_interval(secs => $3)),
       tried_at = COALESCE(tried_at, now()), look_failed_at = NULL,
       unverified_sends = unverified_sends + CASE WHEN $4 THEN 1 ELSE 0 END,
       updated_at = now()
WHERE notification_id = $1 AND claim = $2 AND status = 'sending' AND lease_until > now()
RETURNING lease_until
"""


async def claim_due(
    conn: Conn, notification_id: uuid.UUID, lease_s: float, due_by: datetime | None
) -> asyncpg.Record | None:
    """Claim a pending message due by `due_by` (None: the database's now) for `lease_s`; the
    row with its alert's status and the database's now, or None when it is not to be sent."""
    return await conn.fetchrow(_CLAIM_DUE, notification_id, lease_s, due_by)


async def claim_expired(
    conn: Conn, notification_id: uuid.UUID, lease_s: float, expired_by: datetime | None
) -> asyncpg.Record | None:
    """Take over a message whose lease ran out by `expired_by` (None: the database's now), as
    `claim_due` does; None when nobody is to take it over."""
    return await conn.fetchrow(_CLAIM_EXPIRED, notification_id, lease_s, expired_by)


async def touch_stale_sent(
    conn: Conn, before: datetime, channels: list[str]
) -> list[asyncpg.Record]:
    """Up to 200 messages of `channels` sent and not heard of since `before`, touched so that
    no other sweep takes them for another `before`; their ids, channels and provider ids."""
    return await conn.fetch(_TOUCH_STALE_SENT, before, channels)


async def look_answered(conn: Conn, notification_id: uuid.UUID, claim: int) -> None:
    """The provider answered a look for the message: the looks' failures before it are
    forgotten (nothing, if the claim is no longer current)."""
    await conn.execute(_LOOK_ANSWERED, notification_id, claim)


async def fence(
    conn: Conn,
    notification_id: uuid.UUID,
    claim: int,
    send_bound_s: float,
    unverified: bool = False,
) -> datetime | None:
    """The lease stretched to outlast a send of `send_bound_s` (counted `unverified` when the
    provider could not say whether it already has the message); None when the claim is no
    longer current (or its lease ran out), and the message must not be sent."""
    return await conn.fetchval(_FENCE, notification_id, claim, send_bound_s, unverified)


# --- marks ------------------------------------------------------------------------------------

# A delivery callback may have overtaken the send: never move a status backwards. Sent and
# delivered times are the first ones (a provider reports twice).
_MARK_SENT = """
UPDATE notifications SET provider_id = $2, lease_until = NULL,
       status = CASE WHEN status = 'sending' THEN $3 ELSE status END,
       sent_at = COALESCE(sent_at, now()),
       delivered_at = CASE WHEN $3 = 'delivered' THEN COALESCE(delivered_at, now())
                           ELSE delivered_at END,
       updated_at = now()
WHERE notification_id = $1 AND claim = $4
RETURNING notification_id, alert_id, child_id
"""
# $2: 'failed' or 'cancelled', the end of a message's tries.
_MARK_ENDED = """
UPDATE notifications SET status = $2, lease_until = NULL, last_error = $3, updated_at = now()
WHERE notification_id = $1 AND claim = $4 AND status = 'sending'
RETURNING notification_id, alert_id, child_id
"""
# $4: seconds before the provider may be asked about this attempt (an ambiguous outcome), else
# NULL to keep what an earlier attempt set; no try comes before that either. $6: the attempt
# failed asking the provider for an earlier one's copy (the first of such failures is kept).
_MARK_RETRY = """
UPDATE notifications SET status = 'pending', lease_until = NULL, last_error = $2,
       look_after = COALESCE(now() + make_interval(secs => $4), look_after),
       look_failed_at = CASE WHEN $6 THEN COALESCE(look_failed_at, now()) END,
       next_attempt_at = GREATEST(now() + make_interval(secs => $3),
                                  COALESCE(now() + make_interval(secs => $4), look_after, now())),
       updated_at = now()
WHERE notification_id = $1 AND claim = $5 AND status = 'sending'
RETURNING next_attempt_at, look_after
"""
# A provider's report (callback or re-poll), by our id or, failing that, the provider's; only
# from a status in $5, the ones ranked before the new one.
_MOVE_STATUS = """
UPDATE notifications SET status = $3, updated_at = now(),
       provider_id = COALESCE(provider_id, $2),
       sent_at = COALESCE(sent_at, now()),
       delivered_at = CASE WHEN $3 = 'delivered' THEN COALESCE(delivered_at, now())
                           ELSE delivered_at END,
       last_error = COALESCE($4, last_error)
WHERE (notification_id = $1 OR ($1 IS NULL AND provider_id = $2))
  AND status = ANY($5)
RETURNING notification_id, alert_id, child_id
"""
_MARK_TOLD = """
UPDATE notifications SET unreachable_told_at = $2, updated_at = now()
WHERE notification_id = ANY($1) AND unreachable_told_at IS NULL
"""


async def mark_sent(
    conn: Conn, notification_id: uuid.UUID, claim: int, provider_id: str, status: str
) -> asyncpg.Record | None:
    """The provider has the message, as `status` (sent or delivered); the row's ids, or None
    when the claim is no longer current."""
    return await conn.fetchrow(_MARK_SENT, notification_id, provider_id, status, claim)


async def mark_ended(
    conn: Conn, notification_id: uuid.UUID, claim: int, status: str, error: str
) -> asyncpg.Record | None:
    """End the message's tries as `status` (failed or cancelled); the row's ids, or None when
    the claim is no longer current."""
    return await conn.fetchrow(_MARK_ENDED, notification_id, status, error, claim)


async def mark_retry(
    conn: Conn,
    notification_id: uuid.UUID,
    claim: int,
    error: str,
    wait_s: float,
    look_s: float | None,
    look_failed: bool = False,
) -> asyncpg.Record | None:
    """Back to pending for a try in `wait_s`, not before the provider may be asked about this
    attempt (`look_s`, None to keep the last); `look_failed` when the attempt could not ask
    the provider for an earlier one's copy. Its `next_attempt_at` and `look_after`, or None
    when the claim is no longer current."""
    return await conn.fetchrow(
        _MARK_RETRY, notification_id, error, wait_s, look_s, claim, look_failed
    )


async def move_status(
    conn: Conn,
    notification_id: uuid.UUID | None,
    provider_id: str | None,
    status: str,
    error: str | None,
    earlier: list[str],
) -> list[asyncpg.Record]:
    """A provider's report: the messages (by our id, else every one with the provider's)
    moved to `status` from one of `earlier`; their ids, none when unknown or further on."""
    return await conn.fetch(_MOVE_STATUS, notification_id, provider_id, status, error, earlier)


async def mark_told(conn: Conn, notification_ids: list[uuid.UUID], at: datetime) -> None:
    """The messages' unreachable contact has been reported, as of `at` (the first report
    stays)."""
    await conn.execute(_MARK_TOLD, notification_ids, at)
