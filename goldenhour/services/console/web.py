"""What every console page shares: templates, the signed-in user, CSRF checks, error pages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from goldenhour.services.console import sessions
from goldenhour.services.console.sessions import ConsoleUser

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Pages carry child data and single-use links: no caching, no framing, no referrer, own code only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class NotSignedIn(Exception):
    """The page needs a session; the handler sends the browser to sign in and back."""

    def __init__(self, path: str) -> None:
        self.path = path


class PageError(Exception):
    """Answer with an error page: a status and a sentence for the person reading it."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message


def _zone(request: Request) -> ZoneInfo:
    return request.app.state.config.tz


def local_time(request: Request, at: datetime | None, with_day: bool = False) -> str:
    if at is None:
        return ""
    return at.astimezone(_zone(request)).strftime("%H:%M %a %d %b" if with_day else "%H:%M")


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    org = user.caller.org if user else None
    response = templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "org": org,
            "csrf": user.csrf_token if user else "",
            "now": datetime.now(UTC),
            "t": lambda at, day=False: local_time(request, at, day),
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: Request, exc: PageError, user: ConsoleUser | None = None) -> HTMLResponse:
    return render(
        request, "message.html", user, exc.status_code, message=exc.message, code=exc.status_code
    )


async def signed_in(request: Request) -> ConsoleUser:
    """FastAPI dependency for pages: the user, or off to the sign-in page."""
    user = await sessions.current(request, datetime.now(UTC))
    if user is None:
        raise NotSignedIn(request.url.path)
    return user


async def checked_form(request: Request, user: ConsoleUser) -> FormData:
    """The posted form, once its CSRF token matches the session's."""
    form = await request.form()
    token = form.get("csrf_token")
    if not sessions.csrf_ok(user.csrf_token, token if isinstance(token, str) else None):
        raise PageError(
            status.HTTP_403_FORBIDDEN,
            "This form was not sent from your console session (its security token is missing "
            "or out of date). Go back, reload the page and try again.",
        )
    return form


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def safe_next(path: str | None, default: str) -> str:
    """Only a path of this console: never a redirect to another site."""
    if path and path.startswith("/console") and not path.startswith("//"):
        return path
    return default
