"""GET /children/{id}: a child's record for the agencies acting for that child."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Request, status

from goldenhour.contracts.api import (
    AlertSummary,
    ChildRecord,
    ClockView,
    EpisodeView,
    ErrorBody,
    PlacementView,
    RiskSignalView,
)
from goldenhour.contracts.events import ChildId
from goldenhour.services import access
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()


def _no_such_child() -> HTTPException:
    # The same answer for an unknown child and one the caller may not see: its existence is
    # itself child data.
    return HTTPException(status.HTTP_404_NOT_FOUND, detail="no such child")


@router.get(
    "/children/{child_id}",
    response_model=ChildRecord,
    responses={
        404: {"model": ErrorBody, "description": "No such child, or not one the caller acts for"}
    },
)
async def get_child(
    request: Request, child_id: ChildId, caller: Caller = Depends(authenticate)
) -> ChildRecord:
    """The child's current risk, placement, open concerns, episodes and due return interview."""
    config = request.app.state.config
    now = datetime.now(UTC)
    async with request.app.state.pool.acquire() as conn, conn.transaction(readonly=True):
        child = await conn.fetchrow("SELECT * FROM children WHERE child_id = $1", child_id)
        if child is None:
            raise _no_such_child()
        placement = await conn.fetchrow(
            "SELECT * FROM placements WHERE child_id = $1 AND ended_at IS NULL", child_id
        )
        agencies = access.agencies(
            config,
            child["local_authority"],
            placement["care_home"] if placement else None,
            placement["placement_id"] if placement else None,
        )
        if not access.may_see(caller.org, agencies):
            raise _no_such_child()
        live = await conn.fetch(
            "SELECT * FROM alerts WHERE child_id = $1 AND status <> 'resolved'"
            " ORDER BY opened_at DESC",
            child_id,
        )
        episodes = await conn.fetch(
            "SELECT * FROM alerts WHERE child_id = $1 AND kind = 'missing'"
            " ORDER BY anchor_at DESC, opened_at DESC",
            child_id,
        )
        in_window = await conn.fetchval(
            "SELECT count(*) FROM alerts WHERE child_id = $1 AND kind = 'missing'"
            " AND anchor_at >= $2 AND anchor_at <= $3",
            child_id,
            now - config.watchers.episodes_window,
            now,
        )
        signals = await conn.fetch(
            "SELECT * FROM risk_signals WHERE child_id = $1 ORDER BY occurred_at DESC", child_id
        )
        clocks = await conn.fetch(
            "SELECT kind, due_at FROM watch_timers WHERE child_id = $1 AND status = 'pending'"
            " ORDER BY due_at, kind",
            child_id,
        )
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
