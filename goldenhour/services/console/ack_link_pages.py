"""The email acknowledgement link: GET shows the alert and a button; only the POST acknowledges.

Mail scanners open links to check them; a GET that acknowledged would tell everyone someone was
acting when nobody was. The link works without signing in: the signed token is the credential,
bound to one message and so to one contact, usable once, and it expires.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, Response

from goldenhour.contracts.alert_kinds import LABELS
from goldenhour.infra.ack_links import LinkRefused
from goldenhour.services.acks import acknowledge_by_message
from goldenhour.services.console import db
from goldenhour.services.console.board import contact_label
from goldenhour.services.console.web import PageError, render

router = APIRouter(prefix="/ack")


async def _message(request: Request, token: str) -> asyncpg.Record:
    links = request.app.state.settings.ack_links
    if links is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "Acknowledgement links are not enabled here.")
    try:
        notification_id = links.notification(token)
    except LinkRefused as exc:
        raise PageError(status.HTTP_410_GONE, str(exc)) from None
    row = await request.app.state.pool.fetchrow(db.LINKED_MESSAGE, notification_id)
    if row is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "This acknowledgement link is not valid.")
    return row


def _page(request: Request, row: asyncpg.Record, status_code: int = 200, **extra) -> Response:
    return render(
        request,
        "ack_link.html",
        None,
        status_code,
        row=row,
        kind_label=LABELS.get(row["kind"], row["kind"]),
        contact=contact_label(request.app.state.config, row["contact_id"]),
        **extra,
    )


def _used(row: asyncpg.Record) -> PageError:
    return PageError(
        status.HTTP_410_GONE,
        f"This link was already used at {row['used_at']:%H:%M on %d %b} (UTC). "
        "The alert stays acknowledged; nothing more is needed from this link.",
    )


@router.get("/{token}", response_class=HTMLResponse)
async def ack_link_page(request: Request, token: str) -> Response:
    row = await _message(request, token)
    if row["used_at"] is not None:
        raise _used(row)
    return _page(request, row, token=token)


@router.post("/{token}", response_class=HTMLResponse)
async def ack_link_confirm(request: Request, token: str) -> Response:
    row = await _message(request, token)
    now = datetime.now(UTC)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        first = await conn.fetchval(
            db.USE_ACK_LINK,
            row["notification_id"],
            now,
        )
        if not first:
            raise _used(await conn.fetchrow(db.LINKED_MESSAGE, row["notification_id"]))
        result = await acknowledge_by_message(
            conn, row, via="email", now=now, alerts_topic=request.app.state.topics.alerts
        )
    if result is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "This acknowledgement link is not valid.")
    return _page(request, row, acknowledged_at=now, resolved=result.status == "resolved")
