"""A message's delivery status as providers report it: by callback or when re-polled."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Provider status words mapped onto ours; a status only ever moves forward.
_PROVIDER = {
    "accepted": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
}
_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "cancelled": 3}


def audited_change(update: str, actor: str, action: str, detail: str) -> str:
    """One statement: `update` of one message (SQL) and its audit line, returning the message's
    notification_id, alert_id and child_id. `action` and `detail` are SQL expressions; the
    detail also carries the notification id. One round trip and its own transaction."""
    return f"""
    WITH changed AS ({update} RETURNING notification_id, alert_id, child_id),
    audited AS (
        INSERT INTO audit_log (actor, action, child_id, alert_id, detail)
        SELECT '{actor}', {action}, child_id, alert_id,
               {detail} || jsonb_build_object('notification_id', notification_id)
        FROM changed
    )
    SELECT * FROM changed
    """


# Providers call back several times for every message: one statement each.
_MOVE = audited_change(
    """UPDATE notifications SET status = $3, updated_at = now(),
        provider_id = COALESCE(provider_id, $2),
        sent_at = COALESCE(sent_at, now()),
        delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
        last_error = COALESCE($4, last_error)
    WHERE (notification_id = $1 OR ($1 IS NULL AND provider_id = $2))
      AND status = ANY($5)""",
    "system:provider",
    "'notification.' || $3",
    "jsonb_build_object('error', $4::text)",
)


def provider_status(reported: str) -> str | None:
    """Our status for a provider's status word, or None when the word is unknown."""
    return _PROVIDER.get(reported.lower())


async def apply_status(
    pool: asyncpg.Pool,
    ours: str,
    error: str | None,
    *,
    notification_id: uuid.UUID | None = None,
    provider_id: str | None = None,
) -> bool:
    """Move one message forward to `ours`; False when it is unknown or already further on."""
    earlier = [s for s, rank in _RANK.items() if rank < _RANK[ours]]
    row = await pool.fetchrow(
        _MOVE,
        notification_id,
        provider_id,
        ours,
        error,
        earlier,
    )
    if row is None:
        return False
    log.info(
        f"notification.{ours}",
        alert_id=str(row["alert_id"]),
        child_id=row["child_id"],
        notification_id=str(row["notification_id"]),
    )
    return True
