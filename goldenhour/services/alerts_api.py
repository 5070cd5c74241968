"""GET /alerts, GET /alerts/{id}, POST /alerts/{id}/ack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from goldenhour.contracts.api import (
    AckAnswer,
    AckView,
    AlertDetail,
    AlertSummary,
    NotificationView,
    StepView,
)
from goldenhour.contracts.config import GoldenHourConfig, OrgKind
from goldenhour.services import access, db
from goldenhour.services.acks import acknowledge
from goldenhour.services.api_schema import error
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()

_STATUS = {
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "live": ("open", "acknowledged"),
    "all": ("open", "acknowledged", "resolved"),
}
# What a route about one alert answers for one the caller may not see, as for one that is not.
_HIDDEN = {404: error("No such alert, or not one the caller may see")}


def visibility_args(config: GoldenHourConfig, caller: Caller) -> tuple[bool, str, list[str]]:
    """The caller's parameters to the visibility rule of `db.VISIBLE_ALERTS` and
    `db.BOARD_ALERTS`: national or not, the organisation, the authorities it polices."""
    national = caller.org.kind == OrgKind.national
    return national, caller.org.code, access.policed_by(config, caller.org)


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
    rows = await request.app.state.pool.fetch(
        db.VISIBLE_ALERTS,
        list(_STATUS[status_]),
        *visibility_args(request.app.state.config, caller),
        limit,
    )
    return [AlertSummary.model_validate(dict(r)) for r in rows]


async def _visible_alert(
    request: Request, caller: Caller, alert_id: uuid.UUID, conn: asyncpg.Connection
) -> asyncpg.Record:
    alert = await conn.fetchrow(db.ALERT_BY_ID, alert_id)
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


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses=_HIDDEN)
async def get_alert(
    request: Request, alert_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> AlertDetail:
    """One alert with its timeline: steps, every notification and its status, acknowledgements."""
    async with request.app.state.pool.acquire() as conn:
        alert = await _visible_alert(request, caller, alert_id, conn)
        return await load_detail(conn, alert)


async def load_detail(conn: asyncpg.Connection, alert: asyncpg.Record) -> AlertDetail:
    """An alert with its steps, notifications and acknowledgements, in order."""
    alert_id = alert["alert_id"]
    steps = await conn.fetch(db.ALERT_STEPS, alert_id)
    notes = await conn.fetch(db.ALERT_NOTIFICATIONS, alert_id)
    acks = await conn.fetch(db.ALERT_ACKNOWLEDGEMENTS, alert_id)
    return AlertDetail.model_validate(
        {
            **dict(alert),
            "steps": [StepView.model_validate(dict(r)) for r in steps],
            "notifications": [NotificationView.model_validate(dict(r)) for r in notes],
            "acknowledgements": [AckView.model_validate(dict(r)) for r in acks],
        }
    )


@router.post("/alerts/{alert_id}/ack", response_model=AckAnswer, responses=_HIDDEN)
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
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
    return AckAnswer(alert_id=alert_id, status=result.status, acknowledged=True)
