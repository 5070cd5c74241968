"""Rows the integration tests seed straight into the database: a child in a placement, and an
open alert, written the way the streams worker writes them."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def seed_child(
    pool: asyncpg.Pool,
    child_id: str,
    placement_id: str,
    care_home: str = "OAK",
    local_authority: str = "LBH",
    risk_level: str = "high",
    at: datetime | None = None,
    curfew: str | None = None,
) -> None:
    """An identified child with a current placement, both from `at` (now by default)."""
    await pool.execute(
        "INSERT INTO children (child_id, local_authority, risk_level, identified_at)"
        " VALUES ($1, $2, $3, coalesce($4, now()))",
        child_id,
        local_authority,
        risk_level,
        at,
    )
    await pool.execute(
        "INSERT INTO placements (placement_id, child_id, care_home, curfew, started_at)"
        " VALUES ($1, $2, $3, $4, coalesce($5, now()))",
        placement_id,
        child_id,
        care_home,
        curfew,
        at,
    )


async def open_alert(
    pool: asyncpg.Pool | asyncpg.Connection,
    child_id: str,
    ack_code: str = "1234",
    kind: str = "missing",
    local_authority: str = "LBH",
    alert_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """An open high-risk alert for `child_id`, opened now; returns its id."""
    aid = alert_id or uuid.uuid4()
    await pool.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " local_authority, ack_code, opened_at)"
        " VALUES ($1, $2, $3, 'open', 'high', 'high', now(), $4, $5, now())",
        aid,
        child_id,
        kind,
        local_authority,
        ack_code,
    )
    return aid


CHILD = "LBH-2026-0042"


async def add_notification(
    pool: asyncpg.Pool,
    alert_id: uuid.UUID,
    *,
    channel: str = "sms",
    address: str = "+447700900001",
    contact: str = "c1",
    status: str = "pending",
    lease_s: float | None = None,
) -> uuid.UUID:
    """One message row of step s0 for CHILD, due now; `lease_s` sets its lease relative to now
    (negative: expired). A row not pending counts one attempt already made."""
    nid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
        " org_code, channel, address, subject, body, status, attempts, next_attempt_at,"
        " lease_until, created_at)"
        " VALUES ($1, $2, $3, 's0', $4, 'MPS', $5, $6, $7, $8, $9,"
        " CASE WHEN $9 = 'pending' THEN 0 ELSE 1 END, now(),"
        " now() + make_interval(secs => $10::float8), now())",
        nid,
        alert_id,
        CHILD,
        contact,
        channel,
        address,
        f"Missing child {CHILD}" if channel == "email" else "",
        f"ALERT {CHILD} missing. Ack 1234 ({contact})",
        status,
        lease_s,
    )
    return nid


async def notification(pool: asyncpg.Pool, nid: uuid.UUID) -> asyncpg.Record:
    """The message row `nid` as it stands."""
    return await pool.fetchrow("SELECT * FROM notifications WHERE notification_id = $1", nid)
