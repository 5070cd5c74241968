"""A message's delivery status as providers report it: by callback or when re-polled."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from goldenhour.notifiers import db

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
# Where each status stands in a message's life, so a report only moves it forward.
_STAGE = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "cancelled": 3}


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
    """Move the message forward to `ours`; False when it is unknown or already further on."""
    earlier = [s for s, stage in _STAGE.items() if stage < _STAGE[ours]]
    rows = await db.move_status(pool, notification_id, provider_id, ours, error, earlier)
    for row in rows:
        log.info(
            f"notification.{ours}",
            alert_id=str(row["alert_id"]),
            child_id=row["child_id"],
            notification_id=str(row["notification_id"]),
        )
    return bool(rows)
