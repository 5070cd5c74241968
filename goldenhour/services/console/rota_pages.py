"""A rota's page: the open alerts whoever is on call holds, who is on now, the next fortnight,
the live and proposed changes, and, for the organisation's duty managers and admins, the forms
that change it (an override, a shift's cover asked for and taken, a temporary schedule, a change
withdrawn); and who is on, for the board's header.

The same rules as the API's rota routes (goldenhour/services/rotas_api.py), through the same
store; only another agency's rota is answered as the console answers for another agency's case
(403, saying so), where the API says 404.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from goldenhour.contracts.alert_kinds import LABELS
from goldenhour.contracts.config import GoldenHourConfig, Organisation
from goldenhour.contracts.oncall import NO_CHANGES, timeline
from goldenhour.contracts.rotas import Rota
from goldenhour.infra import rota_changes
from goldenhour.services.console import rota_views
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.web import (
    PageError,
    checked_form,
    local_time,
    render,
    see_other,
    signed_in,
)
from goldenhour.services.rotas_api import MANAGERS
from goldenhour.streams.held_alerts import held

# Relative: board_pages includes it under /console until app.py includes it itself.
router = APIRouter(prefix="/rotas")

FOREVER = datetime.max.replace(tzinfo=UTC)
FORM_TIME = "%Y-%m-%dT%H:%M"
DONE = {
    "added": "Change made: it is live now, and the table below shows who is on.",
    "withdrawn": "Change withdrawn: the rota decides who is on again.",
    "asked": (
        "Cover asked for: the swap is listed below as proposed. The shift stays with the rota's "
        "member until someone takes it."
    ),
    "taken": "Shift taken: the swap is live now, and the table below shows who is on.",
    "temporary": (
        "Temporary schedule made: it is live now. Over its range only its shifts count, and the "
        "table below shows who is on."
    ),
}
NOT_WAITING = (
    "That swap does not wait for a taker any more: it may have been taken or withdrawn already. "
    "Open the rota page again to see who is on call."
)


def may_change(user: ConsoleUser) -> bool:
    return bool(MANAGERS.intersection(user.caller.user.roles))


def _rota(request: Request, user: ConsoleUser, rota_id: str) -> tuple[Organisation, Rota]:
    found = request.app.state.config.rota(rota_id)
    if found is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "There is no such rota.")
    if found[0].code != user.caller.org.code:
        raise PageError(
            status.HTTP_403_FORBIDDEN, "This rota belongs to another agency; you cannot open it."
        )
    return found


def _check_may_change(user: ConsoleUser, org: Organisation) -> None:
    if not may_change(user):
        raise PageError(
            status.HTTP_403_FORBIDDEN,
            f"Only a duty manager or admin of {org.name or org.code} can change its rotas. "
            "The rota page shows you who is on call.",
        )


async def on_call_header(
    pool: asyncpg.Pool, config: GoldenHourConfig, org: Organisation, now: datetime
) -> list[rota_views.OnNow]:
    """Who is on now for each of `org`'s rotas, by the changes active now (as `GET /rotas`)."""
    if not org.rotas:
        return []
    return rota_views.on_call_header(config, org, now, await rota_changes.active_at(pool, now))


def _fields(posted: FormData) -> dict[str, str]:
    """A posted form's fields as typed, without its CSRF token."""
    return {k: v for k, v in posted.items() if isinstance(v, str) and k != "csrf_token"}


def _defaults(request: Request, on: rota_views.OnNow, people: list[str], now: datetime) -> dict:
    """The override form as first shown: whoever is on replaced by another, from now to the
    next handover."""
    tz = request.app.state.config.tz
    member = next((m for m in on.members if m in people), "")
    return {
        "action": "replace",
        "member": member,
        "by": next((p for p in people if p != member and p not in on.members), ""),
        "start": now.astimezone(tz).strftime(FORM_TIME),
        "end": on.until.astimezone(tz).strftime(FORM_TIME) if on.until else "",
    }


async def _page(
    request: Request,
    user: ConsoleUser,
    org: Organisation,
    rota: Rota,
    now: datetime,
    status_code: int = status.HTTP_200_OK,
    failed: str = "",
    problems: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    """The page; after a refused form, `failed` names that form ("override", "swap",
    "temporary", "take-<change id>"), shown again with `values` as sent and `problems` beside
    its fields."""
    config: GoldenHourConfig = request.app.state.config
    async with request.app.state.pool.acquire() as conn:
        holding = await held(conn, config, org, rota, now)
        rows = await rota_changes.between(conn, rota.id, now, FOREVER, ("active", "proposed"))
    changes = rota_changes.changes(rows).get(rota.id, NO_CHANGES)
    segments = timeline(rota, config.tz, now, now + rota_views.AHEAD, changes)
    on = rota_views.on_now(rota, segments[0], segments[0].end)
    people = [c.id for c in org.contacts if c.role == rota.role]
    choices = rota_views.shift_choices(rota, config.tz, now, rows)
    posted = values or {}
    forms = {
        "override": posted if failed == "override" else _defaults(request, on, people, now),
        "swap": posted if failed == "swap" else {"shift": choices[0].value if choices else ""},
        "temporary": posted if failed == "temporary" else {},
        "take": posted if failed.startswith("take-") else {},
    }
    return render(
        request,
        "rota.html",
        user,
        status_code,
        rota=rota,
        role=rota_views.role_words(rota.role),
        held=[{**dict(a), "kind_label": LABELS.get(a["kind"], a["kind"])} for a in holding],
        on=on,
        stretches=rota_views.stretches(segments, rows),
        changes=rota_views.change_lines(config, rows),
        may_change=may_change(user),
        people=people,
        actions=rota_views.ACTIONS,
        shift_choices=choices,
        shift_rows=range(1, rota_views.SHIFT_ROWS + 1),
        failed=failed,
        problems=problems or {},
        forms=forms,
        reason_max=rota_views.REASON_MAX,
        done=done,
    )


@router.get("/{rota_id}", response_class=HTMLResponse)
async def rota_page(
    request: Request, rota_id: str, done: str = "", user: ConsoleUser = Depends(signed_in)
) -> Response:
    org, rota = _rota(request, user, rota_id)
    return await _page(request, user, org, rota, datetime.now(UTC), done=DONE.get(done, ""))


@router.post("/{rota_id}/overrides")
async def add_override(
    request: Request, rota_id: str, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Add, remove or replace someone over a range: the API's `POST /rotas/{id}/overrides`."""
    posted = await checked_form(request, user)
    org, rota = _rota(request, user, rota_id)
    _check_may_change(user, org)
    form = _fields(posted)
    now = datetime.now(UTC)
    try:
        body = rota_views.override_request(form, request.app.state.config.tz)
        rota_views.check_override(org, rota, body, now)
        change = rota_changes.NewChange.override(body)
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await rota_changes.add(conn, rota.id, org.code, change, user.caller.actor, now)
    except rota_views.FormProblems as exc:
        problems = exc.problems
    except rota_changes.Clash as exc:
        problems = {
            "form": rota_views.clash_words(exc.rows, lambda at: local_time(request, at, True))
        }
    else:
        return see_other(f"/console/rotas/{rota.id}?done=added")
    return await _page(
        request,
        user,
        org,
        rota,
        now,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "override",
        problems,
        form,
    )


@router.post("/{rota_id}/overrides/{change_id}/withdraw")
async def withdraw_change(
    request: Request, rota_id: str, change_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Withdraw a live or proposed change: the API's `DELETE /rotas/{id}/overrides/{change}`."""
    await checked_form(request, user)
    org, rota = _rota(request, user, rota_id)
    _check_may_change(user, org)
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await rota_changes.withdraw(
                conn, rota.id, change_id, user.caller.actor, datetime.now(UTC)
            )
    except rota_changes.Unknown:
        raise PageError(
            status.HTTP_404_NOT_FOUND,
            "That change is not live any more: it may have been withdrawn already. "
            "Open the rota page again to see who is on call.",
        ) from None
    return see_other(f"/console/rotas/{rota.id}?done=withdrawn")


def _clash(request: Request, exc: rota_changes.Clash) -> dict[str, str]:
    return {"form": rota_views.clash_words(exc.rows, lambda at: local_time(request, at, True))}


@router.post("/{rota_id}/swaps")
async def propose_swap(
    request: Request, rota_id: str, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Ask for cover for one of a member's shifts, taken at once when the taker is named: the
    API's `POST /rotas/{id}/swaps`."""
    posted = await checked_form(request, user)
    org, rota = _rota(request, user, rota_id)
    _check_may_change(user, org)
    form = _fields(posted)
    now = datetime.now(UTC)
    try:
        body = rota_views.swap_request(form)
        shift = rota_views.check_swap(org, rota, request.app.state.config.tz, body, now)
        change = rota_changes.NewChange(
            "swap", shift.start, shift.end, "replace", body.member, None, reason=body.reason
        )
        # Proposed and, when the taker is named, taken in one transaction (as the API): a taking
        # that clashes leaves no proposal behind.
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            row = await rota_changes.add(conn, rota.id, org.code, change, user.caller.actor, now)
            if body.by is not None:
                await rota_changes.take_swap(
                    conn, rota.id, row["change_id"], body.by, user.caller.actor, now
                )
    except rota_views.FormProblems as exc:
        problems = exc.problems
    except rota_changes.Clash as exc:
        problems = _clash(request, exc)
    except rota_changes.Unknown:
        problems = {"by": rota_views.NOT_THEIRS}
    else:
        done = "asked" if body.by is None else "taken"
        return see_other(f"/console/rotas/{rota.id}?done={done}")
    return await _page(
        request, user, org, rota, now, status.HTTP_422_UNPROCESSABLE_CONTENT, "swap", problems, form
    )


@router.post("/{rota_id}/swaps/{change_id}/take")
async def take_swap(
    request: Request, rota_id: str, change_id: uuid.UUID, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """Someone takes a proposed swap: the API's `POST /rotas/{id}/swaps/{change}/take`."""
    posted = await checked_form(request, user)
    org, rota = _rota(request, user, rota_id)
    _check_may_change(user, org)
    form = _fields(posted)
    now = datetime.now(UTC)
    waiting = await rota_changes.between(
        request.app.state.pool, rota.id, now, FOREVER, ("proposed",)
    )
    swap = next((r for r in waiting if r["change_id"] == change_id and r["kind"] == "swap"), None)
    if swap is None:
        raise PageError(status.HTTP_404_NOT_FOUND, NOT_WAITING)
    try:
        by = rota_views.swap_taker(form, org, rota, swap["member"])
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await rota_changes.take_swap(conn, rota.id, change_id, by, user.caller.actor, now)
    except rota_views.FormProblems as exc:
        problems = exc.problems
    except rota_changes.Clash as exc:
        problems = _clash(request, exc)
    except rota_changes.Unknown:
        raise PageError(status.HTTP_404_NOT_FOUND, NOT_WAITING) from None
    else:
        return see_other(f"/console/rotas/{rota.id}?done=taken")
    return await _page(
        request,
        user,
        org,
        rota,
        now,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        f"take-{change_id}",
        problems,
        form,
    )


@router.post("/{rota_id}/temporary")
async def add_temporary(
    request: Request, rota_id: str, user: ConsoleUser = Depends(signed_in)
) -> Response:
    """A temporary schedule, over whose range only its own shifts count: the API's
    `POST /rotas/{id}/temporary`."""
    posted = await checked_form(request, user)
    org, rota = _rota(request, user, rota_id)
    _check_may_change(user, org)
    form = _fields(posted)
    now = datetime.now(UTC)
    try:
        body, rows = rota_views.temporary_request(form, request.app.state.config.tz)
        rota_views.check_temporary(org, rota, body, rows, now)
        change = rota_changes.NewChange.temporary(body)
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await rota_changes.add(conn, rota.id, org.code, change, user.caller.actor, now)
    except rota_views.FormProblems as exc:
        problems = exc.problems
    except rota_changes.Clash as exc:
        words = rota_views.temporary_clash_words(exc.rows, lambda at: local_time(request, at, True))
        problems = {"form": words}
    else:
        return see_other(f"/console/rotas/{rota.id}?done=temporary")
    return await _page(
        request,
        user,
        org,
        rota,
        now,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "temporary",
        problems,
        form,
    )
