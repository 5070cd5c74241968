"""Sign-in, the live board and the case page of the console."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from goldenhour.contracts.config import OrgKind
from goldenhour.contracts.events import parse_event
from goldenhour.infra.db import audit
from goldenhour.services import access
from goldenhour.services.acks import acknowledge
from goldenhour.services.alerts_api import load_detail
from goldenhour.services.console import sessions
from goldenhour.services.console.board import BoardFilters, ack_label, board_rows, contact_label
from goldenhour.services.console.forms import field_errors, form_time
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.timeline import timeline
from goldenhour.services.console.web import (
    PageError,
    checked_form,
    render,
    safe_next,
    see_other,
    signed_in,
)
from goldenhour.services.intake import accept_event

router = APIRouter(prefix="/console")

# Organisations whose people may fire the next step early; a care home reports, it escalates by
# reporting.
ESCALATORS = frozenset({OrgKind.local_authority, OrgKind.police, OrgKind.national})


def _home_for(kind: OrgKind) -> str:
    """Where a user lands: care staff on their forms, everyone else on the board."""
    return "/console/care" if kind == OrgKind.care_home else "/console"


# --- sign-in ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    user = await sessions.current(request, datetime.now(UTC))
    if user is not None:
        return see_other(safe_next(next, _home_for(user.caller.org.kind)))
    return _login_page(request, next)


def _login_page(
    request: Request, next: str | None, error: str = "", status_code: int = 200, user_id: str = ""
) -> Response:
    # Before a session exists, the form's CSRF token is a cookie matched by a hidden field.
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        status_code,
        login_csrf=token,
        next=next or "",
        error=error,
        user_id=user_id,
    )
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        secure=True,
        samesite="strict",
        path="/console/login",
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    user_id = str(form.get("user_id", "")).strip()[:100]
    password = str(form.get("password", ""))[:1000]
    api_key = str(form.get("api_key", "")).strip()[:200]
    next_ = str(form.get("next", "")) or None
    cookie = request.cookies.get(sessions.LOGIN_CSRF_COOKIE)
    if not cookie or not sessions.csrf_ok(cookie, str(form.get("csrf_token", ""))):
        return _login_page(
            request,
            next_,
            "The sign-in form had expired. Please try again.",
            status.HTTP_403_FORBIDDEN,
            user_id,
        )
    settings = request.app.state.settings
    pool: asyncpg.Pool = request.app.state.pool
    now = datetime.now(UTC)
    # The proxy's X-Forwarded-For is believed only from a trusted proxy (services.http_limits).
    address = request.client.host if request.client else "unknown"
    keys = sessions.failure_keys(None if api_key else user_id, address)
    attempt = await sessions.begin_attempt(pool, keys, settings.login_max_failures, now)
    if attempt is None:
        return _login_page(
            request,
            next_,
            "Too many failed sign-ins. Wait 15 minutes, or ask your administrator to reset "
            "your password. Alerts still reach you by SMS and email.",
            status.HTTP_429_TOO_MANY_REQUESTS,
            user_id,
        )
    caller = await sessions.check_credentials(
        pool, request.app.state.config, user_id, password, api_key
    )
    if caller is None:
        # The attempt stays recorded as a failure. One answer for unknown user, wrong password
        # and wrong key: it tells nobody which.
        return _login_page(
            request,
            next_,
            "Wrong user name or password.",
            status.HTTP_401_UNAUTHORIZED,
            user_id,
        )
    await sessions.forget_attempt(pool, attempt)
    token = await sessions.start(pool, caller, timedelta(seconds=settings.session_ttl_s), now)
    await audit(
        pool,
        "console.signed_in",
        None,
        None,
        {"via": "api_key" if api_key else "password"},
        actor=caller.actor,
    )
    response = see_other(safe_next(next_, _home_for(caller.org.kind)))
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=settings.session_ttl_s,
        httponly=True,
        secure=True,
        samesite="lax",
        path="/",
    )
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, user: ConsoleUser = Depends(signed_in)) -> Response:
    await checked_form(request, user)
    await sessions.end(request.app.state.pool, request.cookies.get(sessions.COOKIE, ""))
    response = see_other("/console/login")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# --- the board ----------------------------------------------------------------------------


def _filters(request: Request) -> BoardFilters:
    try:
        return BoardFilters.model_validate(dict(request.query_params))
    except ValidationError:
        raise PageError(status.HTTP_400_BAD_REQUEST, "Unknown filter value.") from None


def _authorities(request: Request, user: ConsoleUser) -> list[tuple[str, str]]:
    """The local authorities whose alerts this user may see, for the filter."""
    org = user.caller.org
    config = request.app.state.config
    las = [o for o in config.organisations if o.kind == OrgKind.local_authority]
    if org.kind != OrgKind.national:
        seen = {org.code, org.local_authority, *access.policed_by(config, org)}
        las = [o for o in las if o.code in seen]
    return [(o.code, o.name or o.code) for o in las]


@router.get("", response_class=HTMLResponse)
async def board(request: Request, user: ConsoleUser = Depends(signed_in)) -> Response:
    filters = _filters(request)
    rows = await board_rows(request.app.state.pool, request.app.state.config, user.caller, filters)
    return render(
        request,
        "board.html",
        user,
        rows=rows,
        filters=filters,
        authorities=_authorities(request, user),
    )


@router.get("/board/rows", response_class=HTMLResponse)
async def board_fragment(request: Request, user: ConsoleUser = Depends(signed_in)) -> Response:
    filters = _filters(request)
    rows = await board_rows(request.app.state.pool, request.app.state.config, user.caller, filters)
    return render(request, "_rows.html", user, rows=rows)


@router.get("/board/events")
async def board_events(request: Request, user: ConsoleUser = Depends(signed_in)) -> Response:
    """Server-sent events: the id of each changed alert this user may see ("*": reload all)."""
    feed = request.app.state.board_feed
    pool: asyncpg.Pool = request.app.state.pool
    config = request.app.state.config

    async def visible(alert_id: str) -> bool:
        if alert_id == "*":
            return True
        row = await pool.fetchrow(
            "SELECT local_authority, care_home, placement_id FROM alerts WHERE alert_id = $1",
            uuid.UUID(alert_id),
        )
        if row is None:
            return False
        child = access.agencies(config, row["local_authority"], row["care_home"], None)
        return access.may_see(user.caller.org, child)

    async def changes() -> AsyncIterator[dict]:
        with feed.subscribe() as queue:
            yield {"event": "ready", "data": "*"}
            while True:
                changed = {await queue.get()}
                await asyncio.sleep(0.05)  # one refresh for a burst of changes
                while not queue.empty():
                    changed.add(queue.get_nowait())
                if await sessions.current(request, datetime.now(UTC)) is None:
                    yield {"event": "signed-out", "data": ""}
                    return
                for alert_id in sorted(changed):
                    if await visible(alert_id):
                        yield {"event": "change", "data": alert_id}

    return EventSourceResponse(changes(), ping=15, headers={"Cache-Control": "no-store"})


# --- one case -----------------------------------------------------------------------------


async def _case(request: Request, user: ConsoleUser, alert_id: uuid.UUID) -> asyncpg.Record:
    alert = await request.app.state.pool.fetchrow(
        "SELECT * FROM alerts WHERE alert_id = $1", alert_id
    )
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
            "SELECT type, occurred_at, received_at, org_code, user_id, data FROM events"
            " WHERE child_id = $1 AND received_at >= $2::timestamptz - interval '1 minute'"
            " AND received_at <= COALESCE($3::timestamptz, now()) ORDER BY received_at",
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
        changed = await conn.fetchval(
            "UPDATE alerts SET escalate_requested_at = $2, escalate_requested_by = $3,"
            " next_due_at = $2, updated_at = now()"
            " WHERE alert_id = $1 AND status <> 'resolved' RETURNING true",
            alert_id,
            now,
            user.caller.actor,
        )
        if not changed:
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
