"""GET /alerts, GET /alerts/{id}, POST /alerts/{id}/ack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from contracts.api import AckAnswer, AckView, AlertDetail, AlertSummary, NotificationView, StepView
from contracts.config import OrgKind
from services import access
from services.acks import acknowledge
from services.auth import Caller, authenticate

router = APIRouter()

_STATUS = {
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "live": ("open", "acknowledged"),
    "all": ("open", "acknowledged", "resolved"),
}


@router.get("/alerts", response_model=list[AlertSummary])
async def list_alerts(
    request: Request,
    status_: Literal["open", "acknowledged", "resolved", "live", "all"] = Query(
        "live", alias="status"
    ),
    limit: int = 200,
    caller: Caller = Depends(authenticate),
) -> list[AlertSummary]:
    """Alerts the caller may see, newest first."""
    limit = max(1, min(limit, 1000))
    policed = _policed(request, caller)
    rows = await request.app.state.pool.fetch(
        """
        SELECT * FROM alerts a
        WHERE a.status = ANY($1)
          AND ($2 OR a.local_authority = $3 OR a.care_home = $3 OR a.local_authority = ANY($4))
        ORDER BY a.opened_at DESC LIMIT $5
        """,
        list(_STATUS[status_]),
        caller.org.kind == OrgKind.national,
        caller.org.code,
        policed,
        limit,
    )
    return [AlertSummary.model_validate(dict(r)) for r in rows]


def _policed(request: Request, caller: Caller) -> list[str]:
    """The local authorities whose police force is the caller's organisation."""
    if caller.org.kind != OrgKind.police:
        return []
    return [o.code for o in request.app.state.config.organisations if o.police == caller.org.code]


async def _visible_alert(
    request: Request, caller: Caller, alert_id: uuid.UUID, conn: asyncpg.Connection
) -> asyncpg.Record:
    alert = await conn.fetchrow("SELECT * FROM alerts WHERE alert_id = $1", alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
    child = access.agencies(
        request.app.state.config,
        alert["local_authority"],
        alert["care_home"],
        alert["placement_id"],
    )
    if not access.may_see(caller.org, child):
        # Same answer as a missing alert: its existence is itself child data.
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
    return alert


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(
    request: Request, alert_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> AlertDetail:
    """One alert with its timeline: steps, every notification and its status, acknowledgements."""
    async with request.app.state.pool.acquire() as conn:
        alert = await _visible_alert(request, caller, alert_id, conn)
        steps = await conn.fetch(
            "SELECT * FROM alert_steps WHERE alert_id = $1 ORDER BY decided_at, due_at, step_key",
            alert_id,
        )
        notes = await conn.fetch(
            "SELECT * FROM notifications WHERE alert_id = $1 ORDER BY created_at, step_key,"
            " contact_id, channel",
            alert_id,
        )
        acks = await conn.fetch(
            "SELECT * FROM acknowledgements WHERE alert_id = $1 ORDER BY acknowledged_at", alert_id
        )
    return AlertDetail.model_validate(
        {
            **dict(alert),
            "steps": [StepView.model_validate(dict(r)) for r in steps],
            "notifications": [NotificationView.model_validate(dict(r)) for r in notes],
            "acknowledgements": [AckView.model_validate(dict(r)) for r in acks],
        }
    )


@router.post("/alerts/{alert_id}/ack", response_model=AckAnswer)
async def ack_alert(
    request: Request, alert_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> AckAnswer:
    """Acknowledge as the calling user; a repeat changes nothing and answers the same."""
    async with request.app.state.pool.acquire() as conn:
        await _visible_alert(request, caller, alert_id, conn)
        result = await acknowledge(
            conn,
            alert_id,
            org_code=caller.org.code,
            user_id=caller.user.id,
            contact_id=None,
            via="api",
            now=datetime.now(UTC),
            alerts_topic=request.app.state.topics.alerts,
        )
    assert result is not None
    return AckAnswer(alert_id=alert_id, status=result.status, acknowledged=True)
