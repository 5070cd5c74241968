"""GET /children/{id}: a child's record for the agencies acting for that child."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Request, status

from goldenhour.contracts.api import (
    AlertSummary,
    ChildRecord,
    ClockView,
    EpisodeView,
    PlacementView,
    RiskSignalView,
)
from goldenhour.contracts.events import ChildId
from goldenhour.services import access, db
from goldenhour.services.api_schema import error
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()


def _no_such_child() -> HTTPException:
    # The same answer for an unknown child and one the caller may not see: its existence is
    # itself child data.
    return HTTPException(status.HTTP_404_NOT_FOUND, detail="no such child")


@router.get(
    "/children/{child_id}",
    response_model=ChildRecord,
    responses={404: error("No such child, or not one the caller acts for")},
)
async def get_child(
    request: Request, child_id: ChildId, caller: Caller = Depends(authenticate)
) -> ChildRecord:
    """The child's current risk, placement, open concerns, episodes and due return interview."""
    config = request.app.state.config
    now = datetime.now(UTC)
    async with request.app.state.pool.acquire() as conn, conn.transaction(readonly=True):
        child = await conn.fetchrow(db.CHILD_BY_ID, child_id)
        if child is None:
            raise _no_such_child()
        placement = await conn.fetchrow(db.CURRENT_PLACEMENT, child_id)
        agencies = access.agencies(
            config,
            child["local_authority"],
            placement["care_home"] if placement else None,
            placement["placement_id"] if placement else None,
        )
        if not access.may_see(caller.org, agencies):
            raise _no_such_child()
        live = await conn.fetch(db.CHILD_OPEN_ALERTS, child_id)
        episodes = await conn.fetch(db.CHILD_EPISODES, child_id)
        in_window = await conn.fetchval(
            db.CHILD_EPISODES_BETWEEN,
            child_id,
            now - config.watchers.episodes_window,
            now,
        )
        signals = await conn.fetch(db.CHILD_RISK_SIGNALS, child_id)
        clocks = await conn.fetch(db.CHILD_PENDING_CLOCKS, child_id)
    return ChildRecord.model_validate(
        {
            **dict(child),
            "exploitation_types": list(child["exploitation_types"] or []),
            "description": child["description"] or {},
            "placement": PlacementView.model_validate(dict(placement)) if placement else None,
            "open_alerts": [AlertSummary.model_validate(dict(r)) for r in live],
            "episodes": [EpisodeView.model_validate(dict(r)) for r in episodes],
            "episodes_in_window": in_window,
            "risk_signals": [RiskSignalView.model_validate(dict(r)) for r in signals],
            "clocks": [ClockView.model_validate(dict(r)) for r in clocks],
        }
    )
