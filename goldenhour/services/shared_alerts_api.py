"""GET /shared-alerts.atom and GET /shared-alerts/{id}.cap: the shared alerts as CAP 1.2.

A caller reads the shared alerts of the authorities that list its organisation as a neighbour,
and those its own organisation issued; any other is answered 404, as if it did not exist (its
existence is itself child data). The content is the shared alert's allow-list and nothing else.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from goldenhour.contracts.api import ErrorBody
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.shared import SharedAlert
from goldenhour.services import db
from goldenhour.services.auth import Caller, authenticate
from goldenhour.services.cap import (
    ATOM_MEDIA_TYPE,
    CAP_MEDIA_TYPE,
    atom_feed,
    cap_alert,
    cap_identifier,
    cap_sender,
)

router = APIRouter()

FEED_LIMIT = 100
"""The most entries one feed holds, newest first."""

_NO_STORE = {"Cache-Control": "no-store"}


def visible_sources(config: GoldenHourConfig, org_code: str) -> list[str]:
    """The source authorities whose shared alerts `org_code` may read: itself and every
    organisation that lists it as a neighbour."""
    return [org_code] + [
        o.code for o in config.organisations if o.code != org_code and org_code in o.neighbours
    ]


def _base_url(request: Request) -> str:
    return request.app.state.settings.public_url.rstrip("/") + "/api/v1"


def _cap_url(request: Request, shared_id: uuid.UUID) -> str:
    return f"{_base_url(request)}/shared-alerts/{shared_id}.cap"


def _shared(row: asyncpg.Record) -> SharedAlert:
    return SharedAlert.model_validate(row["payload"])


@router.get(
    "/shared-alerts.atom",
    response_class=Response,
    responses={200: {"content": {ATOM_MEDIA_TYPE: {}}}},
)
async def shared_alerts_feed(request: Request, caller: Caller = Depends(authenticate)) -> Response:
    """An Atom feed of the shared alerts the caller may read, newest first, at most 100."""
    rows = await request.app.state.pool.fetch(
        db.SHARED_ALERTS_FEED,
        visible_sources(request.app.state.config, caller.org.code),
        FEED_LIMIT,
    )
    entries = [(_shared(r), _cap_url(request, r["shared_id"])) for r in rows]
    updated = max((r["updated_at"] for r in rows), default=datetime.now(UTC))
    body = atom_feed(entries, f"{_base_url(request)}/shared-alerts.atom", updated)
    return Response(body, media_type=ATOM_MEDIA_TYPE, headers=_NO_STORE)


@router.get(
    "/shared-alerts/{shared_id}.cap",
    response_class=Response,
    responses={
        200: {"content": {CAP_MEDIA_TYPE: {}}},
        404: {"model": ErrorBody, "description": "no such alert"},
    },
)
async def shared_alert_cap(
    request: Request, shared_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> Response:
    """The current version of one shared alert as a CAP 1.2 alert."""
    row = await request.app.state.pool.fetchrow(
        db.SHARED_ALERT,
        shared_id,
        visible_sources(request.app.state.config, caller.org.code),
    )
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such shared alert")
    shared = _shared(row)
    # An update or a cancellation refers to the original alert, version 1, first published then;
    # the times of any versions in between are not kept.
    references = (
        [(cap_identifier(shared.shared_id, 1), row["published_at"])] if shared.version > 1 else []
    )
    body = cap_alert(shared, cap_sender(shared.issuing_authority), references)
    return Response(body, media_type=CAP_MEDIA_TYPE, headers=_NO_STORE)
