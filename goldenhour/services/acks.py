"""Acknowledging an alert, from any channel: API, SMS reply, console, email link."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from goldenhour.contracts.derived import AlertAcknowledged
from goldenhour.infra import metrics, outbox
from goldenhour.infra.db import audit
from goldenhour.services import db
from goldenhour.streams import alert_commands

log = structlog.get_logger(__name__)

# Read under the alert's lock, before this acknowledgement is marked: the first is the one that
# finds no acknowledgement time, whichever replica or channel it came by.
FIRST_ACK = """
SELECT kind, local_authority AS authority,
       extract(epoch FROM $2::timestamptz - anchor_at)::float8 AS seconds
FROM alerts WHERE alert_id = $1 AND acknowledged_at IS NULL
"""


@dataclass(frozen=True)
class AckResult:
    """The alert as it stands after the acknowledgement, and whether this one was new."""

    alert_id: uuid.UUID
    child_id: str
    status: str
    new: bool


async def acknowledge(
    conn: asyncpg.Connection,
    alert_id: uuid.UUID,
    *,
    org_code: str,
    user_id: str | None,
    contact_id: str | None,
    via: str,
    now: datetime,
    alerts_topic: str,
) -> AckResult | None:
    """Record who acknowledged; idempotent per person. None when the alert does not exist."""
    async with conn.transaction():
        alert = await conn.fetchrow(db.LOCK_ALERT, alert_id)
        if alert is None:
            return None
        already = await conn.fetchval(
            db.ACKNOWLEDGED_ALREADY,
            alert_id,
            user_id,
            contact_id,
        )
        if already or alert["status"] == "resolved":
            return AckResult(alert_id, alert["child_id"], alert["status"], new=False)
        await conn.execute(
            db.RECORD_ACKNOWLEDGEMENT,
            alert_id,
            org_code,
            user_id,
            contact_id,
            via,
            now,
        )
        first = await conn.fetchrow(FIRST_ACK, alert_id, now)
        status = await alert_commands.acknowledge(conn, alert_id, now)
        actor = f"user:{user_id}" if user_id else f"contact:{contact_id}"
        await audit(
            conn,
            "alert.acknowledged",
            alert["child_id"],
            alert_id,
            {"via": via, "org_code": org_code},
            actor=actor,
        )
        derived = AlertAcknowledged(
            occurred_at=now,
            child_id=alert["child_id"],
            alert_id=alert_id,
            by_user=user_id,
            by_contact=contact_id,
            via=via,
            at=now,
        )
        await outbox.queue(
            conn, alerts_topic, alert["child_id"], derived.model_dump_json().encode()
        )
        await conn.execute(db.NOTIFY_OUTBOX)
    if first is not None:
        facts = metrics.AlertFacts(first["kind"], first["authority"], first["seconds"])
        metrics.observe_first(metrics.FIRST_ACKNOWLEDGEMENT, [facts])
    log.info(
        "alert.acknowledged",
        alert_id=str(alert_id),
        child_id=alert["child_id"],
        via=via,
        event_id=str(derived.event_id),
    )
    return AckResult(alert_id, alert["child_id"], status, new=True)


async def acknowledge_by_message(
    conn: asyncpg.Connection,
    message: asyncpg.Record | Mapping[str, Any],
    *,
    via: str,
    now: datetime,
    alerts_topic: str,
) -> AckResult | None:
    """Acknowledge as the contact a message reached: its row names the alert, the contact and
    the contact's organisation."""
    return await acknowledge(
        conn,
        message["alert_id"],
        org_code=message["org_code"],
        user_id=None,
        contact_id=message["contact_id"],
        via=via,
        now=now,
        alerts_topic=alerts_topic,
    )
