"""The writes to the `alerts` row that the API asks of the alerts' owner: an acknowledgement, a
request to escalate now, and open alerts following their child to a new home or authority.

Each takes the caller's connection, so it lands in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import structlog

log = structlog.get_logger(__name__)

ACKNOWLEDGE_SQL = """
UPDATE alerts SET status = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, $2),
    updated_at = now()
WHERE alert_id = $1
RETURNING status
"""

REQUEST_ESCALATION_SQL = """
UPDATE alerts SET escalate_requested_at = $2, escalate_requested_by = $3, next_due_at = $2,
    updated_at = now()
WHERE alert_id = $1 AND status <> 'resolved'
RETURNING true
"""

LOCK_LIVE_ALERTS_SQL = """
SELECT 1 FROM alerts WHERE child_id = $1 AND status <> 'resolved' FOR UPDATE
"""

FOLLOW_PLACEMENT_SQL = """
UPDATE alerts SET placement_id = $2, care_home = $3, updated_at = now()
WHERE child_id = $1 AND status <> 'resolved'
    AND (placement_id IS DISTINCT FROM $2 OR care_home IS DISTINCT FROM $3)
RETURNING alert_id
"""

FOLLOW_TRANSFER_SQL = """
UPDATE alerts SET local_authority = $2, updated_at = now()
WHERE child_id = $1 AND status <> 'resolved'
RETURNING alert_id
"""


async def acknowledge(conn: asyncpg.Connection, alert_id: uuid.UUID, at: datetime) -> str:
    """Mark the alert acknowledged (the first acknowledgement's time stays); its new status."""
    return await conn.fetchval(ACKNOWLEDGE_SQL, alert_id, at)


async def request_escalation(
    conn: asyncpg.Connection, alert_id: uuid.UUID, at: datetime, actor: str
) -> bool:
    """Ask the clock to fire the alert's next step at `at`; False when it is resolved (or gone)."""
    return bool(await conn.fetchval(REQUEST_ESCALATION_SQL, alert_id, at, actor))


async def lock_live_alerts(conn: asyncpg.Connection, child_id: str) -> None:
    """Hold the child's unresolved alerts until the caller's transaction ends."""
    # Alerts before placements, as the clock takes them when it opens an alert from the
    # placement it holds: the move and a new alert wait for each other, never in a circle.
    await conn.execute(LOCK_LIVE_ALERTS_SQL, child_id)


async def follow_placement(
    conn: asyncpg.Connection, child_id: str, placement_id: str, care_home: str
) -> None:
    """Every open alert of the child goes where the child went: its new home sees it, and the
    later steps tell that home's manager."""
    moved = await conn.fetch(FOLLOW_PLACEMENT_SQL, child_id, placement_id, care_home)
    _log_moved("alert.followed_placement", moved, child_id, care_home=care_home)


async def follow_transfer(conn: asyncpg.Connection, child_id: str, local_authority: str) -> None:
    """The child's open alerts move to the authority the child was transferred to."""
    moved = await conn.fetch(FOLLOW_TRANSFER_SQL, child_id, local_authority)
    _log_moved("alert.transferred", moved, child_id, local_authority=local_authority)


def _log_moved(event: str, moved: list[asyncpg.Record], child_id: str, **where: str) -> None:
    for row in moved:
        log.info(event, alert_id=str(row["alert_id"]), child_id=child_id, **where)
