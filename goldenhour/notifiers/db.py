"""The notifiers' SQL: the candidates a sweep claims, the audited marks of a message row, the
webhook subscriptions' secrets and the failover's reads. Every write of a message row is
`goldenhour.infra.notifications`'s, and of a subscription `goldenhour.infra.subscriptions`'s.

A mark that changes a message's status is audited in the same transaction (`infra.db.audit`),
so the audit log and the row never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from goldenhour.infra import metrics, notifications
from goldenhour.infra.db import audit

DISPATCHER = "system:dispatcher"
PROVIDER = "system:provider"

# Every lease and due time is compared with this clock, never a host's own.
NOW = "SELECT now()"
PING = "SELECT 1"

# --- candidates -------------------------------------------------------------------------------

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


# --- audited marks ----------------------------------------------------------------------------


async def _audited(
    pool: asyncpg.Pool,
    change: Callable[[asyncpg.Connection], Awaitable[asyncpg.Record | None]],
    actor: str,
    action: str,
    detail: dict[str, Any],
) -> asyncpg.Record | None:
    """Make one change of one message and, when it changed, audit it, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        row = await change(conn)
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


# --- the golden hour's firsts ---------------------------------------------------------------

# One transaction at a time decides an alert's first: each takes this lock after its own mark
# and before it looks, so the later sees the earlier's committed mark, whichever replica or
# process (dispatcher, status callback) made it. Two int4 keys: apart from every bigint lock.
_FIRST_LOCK = "SELECT pg_advisory_xact_lock(6299, hashtext($1::uuid::text))"
# The alert's facts when a message marked in this transaction (its `column` = now()) is the
# first of the alert's own messages (not a neighbour's) to reach `column`.
_FIRST = """
SELECT a.kind, a.local_authority AS authority,
       extract(epoch FROM now() - a.anchor_at)::float8 AS seconds
FROM alerts a
WHERE a.alert_id = $1
  AND EXISTS (SELECT 1 FROM notifications n
              WHERE n.notification_id = ANY($2::uuid[]) AND n.alert_id = a.alert_id
                AND n.{column} = now() AND n.subscription_id IS NULL)
  AND NOT EXISTS (SELECT 1 FROM notifications n
                  WHERE n.alert_id = a.alert_id AND n.{column} IS NOT NULL
                    AND n.subscription_id IS NULL
                    AND NOT (n.notification_id = ANY($2::uuid[]) AND n.{column} = now()))
"""
_FIRST_SENT = _FIRST.format(column="sent_at")
_FIRST_DELIVERED = _FIRST.format(column="delivered_at")
CHANNELS_OF = "SELECT channel FROM notifications WHERE notification_id = ANY($1::uuid[])"


async def _firsts(
    conn: asyncpg.Connection, query: str, rows: list[asyncpg.Record]
) -> list[metrics.AlertFacts]:
    """The alerts for which `rows`, just marked in this transaction, are the first."""
    by_alert: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        if row["alert_id"] is not None:
            by_alert.setdefault(row["alert_id"], []).append(row["notification_id"])
    found = []
    for alert_id in sorted(by_alert):  # one order of locks for every transaction
        await conn.execute(_FIRST_LOCK, alert_id)
        first = await conn.fetchrow(query, alert_id, by_alert[alert_id])
        if first is not None:
            found.append(metrics.AlertFacts(first["kind"], first["authority"], first["seconds"]))
    return found


async def mark_sent(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    claim: int,
    provider_id: str,
    status: str,
    detail: dict[str, Any],
) -> bool:
    """The provider has the message; False when the claim is no longer current."""
    sent: list[metrics.AlertFacts] = []
    delivered: list[metrics.AlertFacts] = []

    async def change(conn: asyncpg.Connection) -> asyncpg.Record | None:
        row = await notifications.mark_sent(conn, notification_id, claim, provider_id, status)
        if row is not None:
            sent[:] = await _firsts(conn, _FIRST_SENT, [row])
            if status == "delivered":
                delivered[:] = await _firsts(conn, _FIRST_DELIVERED, [row])
        return row

    marked = await _audited(pool, change, DISPATCHER, "notification.sent", detail)
    # Observed once committed: a transaction that rolled back decided nothing.
    metrics.observe_first(metrics.FIRST_NOTIFICATION, sent)
    metrics.observe_first(metrics.FIRST_DELIVERY, delivered)
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

    def change(conn: asyncpg.Connection) -> Awaitable[asyncpg.Record | None]:
        return notifications.mark_ended(conn, notification_id, claim, status, error)

    action = f"notification.{status}"
    return await _audited(pool, change, DISPATCHER, action, detail) is not None


async def move_status(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID | None,
    provider_id: str | None,
    status: str,
    error: str | None,
    earlier: list[str],
) -> list[asyncpg.Record]:
    """Move the messages to `status` from one of `earlier`, each audited
    `notification.<status>` in the same transaction; their ids, none when unknown or further
    on. Nothing makes a provider id unique, so every row it matches is moved and audited."""
    sent: list[metrics.AlertFacts] = []
    delivered: list[metrics.AlertFacts] = []
    channels: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await notifications.move_status(
            conn, notification_id, provider_id, status, error, earlier
        )
        for row in rows:
            await audit(
                conn,
                f"notification.{status}",
                row["child_id"],
                row["alert_id"],
                {"error": error, "notification_id": str(row["notification_id"])},
                actor=PROVIDER,
            )
        if rows:
            ids = [r["notification_id"] for r in rows]
            channels = [r["channel"] for r in await conn.fetch(CHANNELS_OF, ids)]
            # A report may be the first word of a message whose send was never marked (its
            # provider had it, whatever it reports): the first row to carry a sent time counts.
            sent = await _firsts(conn, _FIRST_SENT, rows)
            if status == "delivered":
                delivered = await _firsts(conn, _FIRST_DELIVERED, rows)
    for channel in channels:
        metrics.NOTIFICATION_OUTCOMES.labels(channel, status).inc()
    metrics.observe_first(metrics.FIRST_NOTIFICATION, sent)
    metrics.observe_first(metrics.FIRST_DELIVERY, delivered)
    return rows


# --- provider ids -----------------------------------------------------------------------------

PROVIDER_ID_OF = "SELECT provider_id FROM notifications WHERE notification_id = $1"
PROVIDER_IDS_HELD = "SELECT provider_id FROM notifications WHERE provider_id = ANY($1)"

# --- webhook subscriptions --------------------------------------------------------------------

SUBSCRIPTION_SECRET = "SELECT status, webhook_secret FROM subscriptions WHERE subscription_id = $1"

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
ALERTS = "SELECT * FROM alerts WHERE alert_id = ANY($1)"
