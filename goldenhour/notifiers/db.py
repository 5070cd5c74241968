"""The notifiers' SQL: claims, the fence before a send, every mark of a message row, delivery
status, webhook subscriptions and the failover's reads.

One clock: every lease and due time is the database's `now()`, never a dispatcher's own, so
two dispatchers whose clocks disagree see the same leases. Every claim (first send, retry,
take-over) increments `claim` and returns it; the fence and every mark present it, so a holder
whose lease was taken over can neither mark the row nor, once it sees that, send.

A mark that changes a message's status is audited in the same transaction (`infra.db.audit`),
so the audit log and the row never disagree.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from goldenhour.infra.db import audit

DISPATCHER = "system:dispatcher"
PROVIDER = "system:provider"

# Every lease and due time is compared with this clock, never a host's own.
NOW = "SELECT now()"
PING = "SELECT 1"

# --- claims -----------------------------------------------------------------------------------

# The row, its alert's state (whether the step still matters) and the database's now.
_WITH_ALERT = """
SELECT c.*, a.status AS alert_status, now() AS db_now
FROM c LEFT JOIN alerts a ON a.alert_id = c.alert_id
"""

# $3: the sweep's now (itself read from the database), or NULL for the database's now.
CLAIM_DUE = (
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
CLAIM_EXPIRED = (
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

# Candidates only, per channel (the partial indexes of 0008): each is claimed when a slot of
# its channel is free, so no lease runs out while its message waits its turn, and a backlog on
# one channel never hides a due message of another. Those already queued here are left out.
DUE = """
SELECT notification_id FROM notifications
WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= $2
  AND NOT (notification_id = ANY($4::uuid[]))
ORDER BY next_attempt_at LIMIT $3
"""
EXPIRED = """
SELECT notification_id FROM notifications
WHERE status = 'sending' AND channel = $1 AND lease_until < $2
  AND (look_after IS NULL OR look_after <= $2)
  AND NOT (notification_id = ANY($4::uuid[]))
ORDER BY lease_until LIMIT $3
"""
STALE_SENT = """
UPDATE notifications SET updated_at = now() WHERE notification_id IN (
    SELECT notification_id FROM notifications WHERE status = 'sent'
      AND updated_at < $1 AND channel = ANY($2)
    ORDER BY updated_at LIMIT 200 FOR UPDATE SKIP LOCKED)
RETURNING notification_id, channel, provider_id
"""

# Just before the provider is called: the claim must still be current and its lease unexpired
# by the database's clock; the lease is stretched to outlast the send, so nobody takes over a
# request still on its way.
FENCE = """
UPDATE notifications SET lease_until = GREATEST(lease_until, now() + make_interval(secs => $3)),
       updated_at = now()
WHERE notification_id = $1 AND claim = $2 AND status = 'sending' AND lease_until > now()
RETURNING lease_until
"""

# --- marks ------------------------------------------------------------------------------------

# A delivery callback may have overtaken the send: never move a status backwards.
MARK_SENT = """
UPDATE notifications SET provider_id = $2, lease_until = NULL,
       status = CASE WHEN status = 'sending' THEN $3 ELSE status END,
       sent_at = COALESCE(sent_at, now()),
       delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
       updated_at = now()
WHERE notification_id = $1 AND claim = $4
RETURNING notification_id, alert_id, child_id
"""
# $2: 'failed' or 'cancelled', the end of a message's tries.
MARK_ENDED = """
UPDATE notifications SET status = $2, lease_until = NULL, last_error = $3, updated_at = now()
WHERE notification_id = $1 AND claim = $4 AND status = 'sending'
RETURNING notification_id, alert_id, child_id
"""
# $4: seconds before the provider may be asked about this attempt (an ambiguous outcome), else
# NULL to keep what an earlier attempt set; no try comes before that either.
MARK_RETRY = """
UPDATE notifications SET status = 'pending', lease_until = NULL, last_error = $2,
       look_after = COALESCE(now() + make_interval(secs => $4), look_after),
       next_attempt_at = GREATEST(now() + make_interval(secs => $3),
                                  COALESCE(now() + make_interval(secs => $4), look_after, now())),
       updated_at = now()
WHERE notification_id = $1 AND claim = $5 AND status = 'sending'
RETURNING next_attempt_at, look_after
"""
# A provider's report (callback or re-poll), by our id or, failing that, the provider's; only
# from a status in $5, the ones ranked before the new one.
MOVE_STATUS = """
UPDATE notifications SET status = $3, updated_at = now(),
       provider_id = COALESCE(provider_id, $2),
       sent_at = COALESCE(sent_at, now()),
       delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
       last_error = COALESCE($4, last_error)
WHERE (notification_id = $1 OR ($1 IS NULL AND provider_id = $2))
  AND status = ANY($5)
RETURNING notification_id, alert_id, child_id
"""


async def _audited(
    pool: asyncpg.Pool,
    statement: str,
    args: tuple[Any, ...],
    actor: str,
    action: str,
    detail: dict[str, Any],
) -> asyncpg.Record | None:
    """Run one change of one message and, when it changed, audit it, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(statement, *args)
        if row is not None:
            await audit(
                conn,
                action,
                row["child_id"],
                row["alert_id"],
                {**detail, "notification_id": str(row["notification_id"])},
                actor=actor,
            )
    return row


async def mark_sent(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    claim: int,
    provider_id: str,
    status: str,
    detail: dict[str, Any],
) -> bool:
    """The provider has the message; False when the claim is no longer current."""
    args = (notification_id, provider_id, status, claim)
    marked = await _audited(pool, MARK_SENT, args, DISPATCHER, "notification.sent", detail)
    return marked is not None


async def mark_ended(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    claim: int,
    status: str,
    error: str,
    detail: dict[str, Any],
) -> bool:
    """End the message's tries as `status` (failed or cancelled), audited
    `notification.<status>`; False when the claim is no longer current."""
    args = (notification_id, status, error, claim)
    action = f"notification.{status}"
    return await _audited(pool, MARK_ENDED, args, DISPATCHER, action, detail) is not None


async def move_status(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID | None,
    provider_id: str | None,
    status: str,
    error: str | None,
    earlier: list[str],
) -> asyncpg.Record | None:
    """Move one message to `status` from one of `earlier`, audited `notification.<status>`;
    the row's ids, or None when it is unknown or already further on."""
    return await _audited(
        pool,
        MOVE_STATUS,
        (notification_id, provider_id, status, error, earlier),
        PROVIDER,
        f"notification.{status}",
        {"error": error},
    )


# --- provider ids -----------------------------------------------------------------------------

PROVIDER_ID_OF = "SELECT provider_id FROM notifications WHERE notification_id = $1"
PROVIDER_IDS_HELD = "SELECT provider_id FROM notifications WHERE provider_id = ANY($1)"

# --- the dispatcher's fast path ---------------------------------------------------------------

# A record redelivered after a crash (its offset not yet committed) is not dead-lettered twice.
ALREADY_DEAD_LETTERED = """
SELECT 1 FROM dead_letters WHERE consumer = $1 AND topic = $2 AND kafka_partition = $3
  AND kafka_offset = $4 AND raw = $5
"""

# --- webhook subscriptions --------------------------------------------------------------------

SUBSCRIPTION_SECRET = "SELECT status, webhook_secret FROM subscriptions WHERE subscription_id = $1"
RESET_FAILURES = """
UPDATE subscriptions SET consecutive_failures = 0
WHERE subscription_id = $1 AND consecutive_failures <> 0
"""
COUNT_FAILURE = """
UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1
WHERE subscription_id = $1 AND status = 'active'
RETURNING *
"""
DISABLE_SUBSCRIPTION = """
UPDATE subscriptions SET status = 'disabled', disabled_at = $2 WHERE subscription_id = $1
"""

# --- the failover -----------------------------------------------------------------------------

# The messages of unresolved alerts whose contact may still need a call or a notice: every
# message of a (step, contact) that has one not yet accepted and not yet reported.
UNANSWERED = """
WITH unanswered AS (
    SELECT DISTINCT alert_id, step_key, contact_id FROM notifications
    WHERE status IN ('pending', 'sending', 'failed') AND unreachable_told_at IS NULL
      AND alert_id IS NOT NULL AND (status = 'failed' OR created_at <= now() - $1::interval)
)
SELECT n.notification_id, n.alert_id, n.step_key, n.contact_id, n.channel, n.status,
       n.created_at, n.failover_of, n.last_error, a.status AS alert_status
FROM unanswered u
JOIN notifications n USING (alert_id, step_key, contact_id)
JOIN alerts a ON a.alert_id = n.alert_id
WHERE a.status <> 'resolved' AND n.channel IN ('sms', 'voice', 'email')
  AND n.step_key NOT LIKE 'unreachable.%'
  -- A neighbour's subscriber hears only the minimised shared alert: never a call or our email.
  AND n.subscription_id IS NULL AND n.step_key NOT LIKE 'share%'
"""
UNREACHABLE_NOTICES = """
SELECT DISTINCT alert_id, step_key FROM notifications
WHERE alert_id = ANY($1) AND step_key LIKE 'unreachable.%'
"""
MARK_TOLD = """
UPDATE notifications SET unreachable_told_at = $2, updated_at = now()
WHERE notification_id = ANY($1) AND unreachable_told_at IS NULL
"""
ALERTS = "SELECT * FROM alerts WHERE alert_id = ANY($1)"
