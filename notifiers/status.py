"""A message's delivery status as providers report it: by callback or when re-polled."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from infra.db import audit

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
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """
            UPDATE notifications SET status = $3, updated_at = now(),
                provider_id = COALESCE(provider_id, $2),
                sent_at = COALESCE(sent_at, now()),
                delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
                last_error = COALESCE($4, last_error)
            WHERE (notification_id = $1 OR ($1 IS NULL AND provider_id = $2))
              AND status = ANY($5)
            RETURNING notification_id, alert_id, child_id
            """,
            notification_id,
            provider_id,
            ours,
            error,
            earlier,
        )
        if row is None:
            return False
        await audit(
            conn,
            f"notification.{ours}",
            row["child_id"],
            row["alert_id"],
            {"notification_id": str(row["notification_id"]), "error": error},
            actor="system:provider",
        )
    log.info(
        f"notification.{ours}",
        alert_id=str(row["alert_id"]),
        child_id=row["child_id"],
        notification_id=str(row["notification_id"]),
    )
    return True
