"""One case: its page and live timeline, and acknowledging, escalating and locating from it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from goldenhour.contracts.config import OrgKind
from goldenhour.contracts.events import parse_event
from goldenhour.infra.db import audit
from goldenhour.services import access, db
from goldenhour.services.acks import acknowledge
from goldenhour.services.alerts_api import load_detail
from goldenhour.services.console.board import ack_label, contact_label
from goldenhour.services.console.forms import field_errors, form_time
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.timeline import timeline
from goldenhour.services.console.web import PageError, checked_form, render, see_other, signed_in
from goldenhour.services.intake import accept_event
from goldenhour.streams import alert_commands

router = APIRouter(prefix="/console")

# Organisations whose people may fire the next step early; a care home reports, it escalates by
# reporting.
ESCALATORS = frozenset({OrgKind.local_authority, OrgKind.police, OrgKind.national})


async def _case(request: Request, user: ConsoleUser, alert_id: uuid.UUID) -> asyncpg.Record:
    alert = await request.app.state.pool.fetchrow(db.ALERT_BY_ID, alert_id)
    if alert is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "There is no such alert.")
    child = access.agencies(
        request.app.state.config, alert["local_authority"], alert["care_home"], None
    )
    if not access.may_see(user.caller.org, child):
        raise PageError(
            status.HTTP_403_FORBIDDEN, "This case belongs to another agency; you cannot open it."
        )
    return alert


async def _case_context(request: Request, user: ConsoleUser, alert: asyncpg.Record) -> dict:
    config = request.app.state.config
    async with request.app.state.pool.acquire() as conn:
        detail = await load_detail(conn, alert)
        events = await conn.fetch(
            db.CASE_EVENTS,
            alert["child_id"],
            alert["opened_at"],
            alert["resolved_at"],
        )
    me_acked = any(a.user_id == user.caller.user.id for a in detail.acknowledgements)
    return {
        "alert": detail,
        "entries": timeline(config, detail, events),
        "acked_by": [ack_label(config, a.user_id, a.contact_id) for a in detail.acknowledgements],
        "told": sorted({contact_label(config, n.contact_id) for n in detail.notifications}),
        "me_acked": me_acked,
        "may_escalate": user.caller.org.kind in ESCALATORS and detail.status != "resolved",
        "may_locate": detail.kind == "missing" and detail.status != "resolved",
        "event_id": str(uuid.uuid4()),
    }


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def case_page(
    request: Request, alert_id: uuid.UUID, done: str = "", user: ConsoleUser = Depends(signed_in)
) -> Response:
    alert = await _case(request, user, alert_id)
    context = await _case_context(request, user, alert)
    return render(request, "case.html", user, done=done[:100], **context)


@router.get("/alerts/{alert_id}/timeline", response_class=HTMLResponse)
async def case_fragment(
    request: Request, alert_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    alert = await _case(request, user, alert_id)
    return render(request, "_case_live.html", user, **await _case_context(request, user, alert))


@router.post("/alerts/{alert_id}/ack")
async def case_ack(
    request: Request, alert_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    await checked_form(request, user)
    await _case(request, user, alert_id)
    async with request.app.state.pool.acquire() as conn:
        await acknowledge(
            conn,
            alert_id,
            org_code=user.caller.org.code,
            user_id=user.caller.user.id,
            contact_id=None,
            via="console",
            now=datetime.now(UTC),
            alerts_topic=request.app.state.topics.alerts,
        )
    return see_other(f"/console/alerts/{alert_id}?done=acknowledged")


@router.post("/alerts/{alert_id}/escalate")
async def case_escalate(
    request: Request, alert_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Ask the clock to fire the next step now; it does so within a fraction of a second."""
    await checked_form(request, user)
    alert = await _case(request, user, alert_id)
    if user.caller.org.kind not in ESCALATORS:
        raise PageError(status.HTTP_403_FORBIDDEN, "Care homes cannot escalate an alert.")
    now = datetime.now(UTC)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        requested = await alert_commands.request_escalation(conn, alert_id, now, user.caller.actor)
        if not requested:
            raise PageError(status.HTTP_409_CONFLICT, "This alert is already resolved.")
        await audit(
            conn,
            "alert.escalate_requested",
            alert["child_id"],
            alert_id,
            {},
            actor=user.caller.actor,
        )
    return see_other(f"/console/alerts/{alert_id}?done=escalated")


@router.post("/alerts/{alert_id}/located")
async def case_located(
    request: Request, alert_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Record the child located: the same `child.located` event as the API, same checks."""
    form = await checked_form(request, user)
    alert = await _case(request, user, alert_id)
    now = datetime.now(UTC)
    raw = {
        "event_id": str(form.get("event_id") or uuid.uuid4()),
        "type": "child.located",
        "occurred_at": now.isoformat(),
        "child_id": alert["child_id"],
        "data": {
            "located_at": form_time(request, form.get("located_at"), now),
            "location": str(form.get("location") or "").strip() or None,
            "status": str(form.get("status") or "") or None,
        },
    }
    try:
        event = parse_event(raw, now)
    except ValidationError as exc:
        context = await _case_context(request, user, alert)
        return render(
            request,
            "case.html",
            user,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            located_errors=field_errors(exc),
            **context,
        )
    try:
        await accept_event(request.app, user.caller, event, now)
    except access.Refusal as exc:
        raise PageError(status.HTTP_403_FORBIDDEN, str(exc)) from None
    return see_other(f"/console/alerts/{alert_id}?done=located")
