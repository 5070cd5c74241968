"""The live board: the page, its rows as a fragment, and the feed that says which changed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from goldenhour.contracts.config import OrgKind
from goldenhour.services import access, db
from goldenhour.services.console import rota_pages, sessions
from goldenhour.services.console.board import BoardFilters, board_rows
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.web import PageError, render, signed_in

router = APIRouter(prefix="/console")


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
    pool, config = request.app.state.pool, request.app.state.config
    rows = await board_rows(pool, config, user.caller, filters)
    on_call = await rota_pages.on_call_header(pool, config, user.caller.org, datetime.now(UTC))
    return render(
        request,
        "board.html",
        user,
        rows=rows,
        filters=filters,
        authorities=_authorities(request, user),
        on_call=on_call,
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
        row = await pool.fetchrow(db.ALERT_AGENCIES, uuid.UUID(alert_id))
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
