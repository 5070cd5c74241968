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
    pool: asyncpg.Pool,
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
