"""Care home forms: record a check-in, report an absence, report a return.

Each form posts the same intake event as the API, through the same validation and the same
transaction; a hidden event id makes a double-click or a resent form a harmless repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from goldenhour.contracts.config import OrgKind
from goldenhour.contracts.events import parse_event
from goldenhour.services import access
from goldenhour.services.console import db
from goldenhour.services.console.forms import field_errors, form_time
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.web import PageError, checked_form, render, see_other, signed_in
from goldenhour.services.intake import accept_event

router = APIRouter(prefix="/console/care")

DONE = {
    "checkin": "Check-in recorded for {child}.",
    "absence": "Absence reported for {child}. Police and the duty manager are being alerted now.",
    "return": "Return recorded for {child}. Everyone alerted is being stood down.",
}


def _care_staff(user: ConsoleUser) -> None:
    if user.caller.org.kind != OrgKind.care_home:
        raise PageError(status.HTTP_403_FORBIDDEN, "These forms are for care home staff.")


async def _children(pool: asyncpg.Pool, home: str) -> list[asyncpg.Record]:
    """The children placed at this home now, with their live missing alert if any."""
    return await pool.fetch(db.CHILDREN_AT_HOME, home)


async def _page(
    request: Request,
    user: ConsoleUser,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: str = "",
    values: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    children = await _children(request.app.state.pool, user.caller.org.code)
    return render(
        request,
        "care.html",
        user,
        status_code,
        children=children,
        errors=errors or {},
        failed_form=form,
        values=values or {},
        done=done,
        event_id=str(uuid.uuid4()),
        default_time=datetime.now(UTC).astimezone(request.app.state.config.tz),
    )


@router.get("", response_class=HTMLResponse)
async def care_page(
    request: Request, done: str = "", child: str = "", user: ConsoleUser = Depends(signed_in)
) -> Response:
    _care_staff(user)
    message = DONE.get(done, "").format(child=child[:40])
    return await _page(request, user, done=message)


def _text(form: dict[str, str], name: str) -> str | None:
    return form.get(name, "").strip() or None


def _event(request: Request, kind: str, form: dict[str, str], now: datetime) -> dict:
    """The intake event for one posted form, before validation."""
    placement_id = _text(form, "placement_id")
    if kind == "checkin":
        event_type = "checkin.recorded"
        data = {
            "placement_id": placement_id,
            "seen_at": form_time(request, form.get("seen_at"), now),
        }
    elif kind == "absence":
        event_type = "absence.reported"
        data = {
            "last_seen_at": form_time(request, form.get("last_seen_at"), now),
            "last_seen_location": _text(form, "last_seen_location"),
            "circumstances": _text(form, "circumstances"),
            "clothing": _text(form, "clothing"),
            "placement_id": placement_id,
        }
    else:
        event_type = "child.located"
        data = {
            "located_at": form_time(request, form.get("located_at"), now),
            "location": _text(form, "location"),
            "status": "returned",
        }
    return {
        "event_id": form.get("event_id") or str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": now.isoformat(),
        "child_id": form.get("child_id", ""),
        "data": data,
    }


@router.post("/{kind}")
async def care_submit(
    request: Request, kind: str, user: ConsoleUser = Depends(signed_in)
) -> Response:
    if kind not in DONE:
        raise PageError(status.HTTP_404_NOT_FOUND, "There is no such form.")
    posted = await checked_form(request, user)
    _care_staff(user)
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    # The placement is this home's current one for the child: never taken from the browser.
    form["placement_id"] = (
        await request.app.state.pool.fetchval(
            db.PLACEMENT_AT_HOME,
            form.get("child_id", ""),
            user.caller.org.code,
        )
        or ""
    )
    now = datetime.now(UTC)
    try:
        event = parse_event(_event(request, kind, form, now), now)
    except ValidationError as exc:
        return await _page(
            request, user, status.HTTP_422_UNPROCESSABLE_CONTENT, field_errors(exc), kind, form
        )
    try:
        await accept_event(request.app, user.caller, event, now)
    except access.Refusal as exc:
        raise PageError(status.HTTP_403_FORBIDDEN, str(exc)) from None
    return see_other(f"/console/care?done={kind}&child={event.child_id}")
