"""The events that announce newly written message rows to the dispatcher."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from goldenhour.contracts.derived import NotificationRequested


def requested(
    alert: asyncpg.Record, rows: list[asyncpg.Record], now: datetime
) -> list[NotificationRequested]:
    """The events announcing newly written message rows to the dispatcher."""
    return [
        NotificationRequested(
            occurred_at=now,
            child_id=alert["child_id"],
            alert_id=alert["alert_id"],
            notification_id=r["notification_id"],
            channel=r["channel"],
            contact_id=r["contact_id"],
            step_key=r["step_key"],
        )
        for r in rows
    ]
