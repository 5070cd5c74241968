"""Signing in to the console and out of it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response

from goldenhour.contracts.config import OrgKind
from goldenhour.infra.db import audit
from goldenhour.services.console import sessions
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.web import checked_form, render, safe_next, see_other, signed_in

router = APIRouter(prefix="/console")


def _home_for(kind: OrgKind) -> str:
    """Where a user lands: care staff on their forms, everyone else on the board."""
    return "/console/care" if kind == OrgKind.care_home else "/console"


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
