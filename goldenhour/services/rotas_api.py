"""The rota routes: who of an organisation's rotas is on call, the shifts of a range, and the
changes its duty managers and admins make (overrides, swaps, temporary schedules).

Scoped to the caller's organisation: any of its users may read its rotas (a care worker needs
to know who the duty manager is tonight); only its duty managers and admins may change them.
Another organisation's rota is 404, as if it did not exist: the routes do not confirm rota ids.
A change is checked against the directory (each person a contact of the rota's role) and against
the live changes (one person in two overlapping changes is refused, naming the clash), and may
not end in the past: who was on call then is the record of who was paged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from goldenhour.contracts.api import ErrorBody
from goldenhour.contracts.config import GoldenHourConfig, Organisation, UserRole
from goldenhour.contracts.oncall import NO_CHANGES, Changes, Shift, shifts, timeline
from goldenhour.contracts.rota_api import (
    ChangeView,
    Instant,
    OnCallView,
    OverrideRequest,
    RotaView,
    ShiftView,
    SwapRequest,
    SwapTake,
    TemporaryRequest,
)
from goldenhour.contracts.rotas import Rota
from goldenhour.infra import rota_changes
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()

MANAGERS = frozenset({UserRole.duty_manager, UserRole.admin})
"""The roles that may change their organisation's rotas."""

# The longest range of shifts one request may ask for.
LONGEST_PAGE = timedelta(days=62)
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such rota of the caller's organisation"}}


def _invalid(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": message, "type": kind}])


def _rota(config: GoldenHourConfig, caller: Caller, rota_id: str) -> tuple[Organisation, Rota]:
    found = config.rota(rota_id)
    if found is None or found[0].code != caller.org.code:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no rota {rota_id} of {caller.org.code}"
        )
    return found


def _check_may_change(caller: Caller) -> None:
    if not MANAGERS.intersection(caller.user.roles):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only a duty manager or admin of {caller.org.code} may change its rotas",
        )


def _check_person(org: Organisation, rota: Rota, field: tuple[str | int, ...], who: str) -> None:
    if not org.has_contact(who, rota.role):
        raise _invalid(
            ("body", *field),
            f"{who} is not a {rota.role} contact of {org.code}",
            "not_a_rota_contact",
        )


def _check_not_past(end: datetime, now: datetime) -> None:
    if end <= now:
        raise _invalid(
            ("body", "end"),
            f"end {end.isoformat()} is past: who was on call then is the record of who was paged",
            "end_past",
        )


async def _changes(pool: asyncpg.Pool, rota_id: str, start: datetime, end: datetime) -> tuple:
    rows = await rota_changes.between(pool, rota_id, start, end)
    return rows, rota_changes.changes(rows).get(rota_id, NO_CHANGES)


def _on_call_view(
    config: GoldenHourConfig, org: Organisation, rota: Rota, at: datetime, changes: Changes
) -> OnCallView:
    segment = timeline(rota, config.tz, at, at + timedelta(microseconds=1), changes)[0]
    return OnCallView(
        rota_id=rota.id,
        org_code=org.code,
        role=rota.role,
        at=at,
        members=sorted(segment.members),
        covered=segment.covered,
        fallback=segment.fallback,
        source=segment.source,
    )


def _change_view(row: asyncpg.Record) -> ChangeView:
    return ChangeView(
        change_id=row["change_id"],
        rota_id=row["rota_id"],
        kind=row["kind"],
        action=row["action"],
        member=row["member"],
        by=row["by_member"],
        start=row["start_at"],
        end=row["end_at"],
        status=row["status"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        taken_by=row["taken_by"],
    )


def _clash(exc: rota_changes.Clash) -> RequestValidationError:
    described = "; ".join(
        f"{r['kind']} {r['change_id']} ({r['action'] or 'schedule'}"
        f"{' ' + r['member'] if r['member'] else ''}"
        f"{' by ' + r['by_member'] if r['by_member'] else ''},"
        f" {r['start_at'].isoformat()} to {r['end_at'].isoformat()})"
        for r in exc.rows
    )
    return _invalid(("body", "start"), f"overlaps a live change: {described}", "change_overlap")


@router.get("/rotas", response_model=list[RotaView])
async def list_rotas(request: Request, caller: Caller = Depends(authenticate)) -> list[RotaView]:
    """The caller's organisation's rotas, each with who is on call now."""
    config: GoldenHourConfig = request.app.state.config
    now = datetime.now(UTC)
    active = await rota_changes.active_at(request.app.state.pool, now) if caller.org.rotas else {}
    return [
        RotaView(
            rota_id=rota.id,
            org_code=caller.org.code,
            role=rota.role,
            members=list(rota.members),
            fallback=rota.fallback,
            advance=str(rota.advance),
            on_call=_on_call_view(config, caller.org, rota, now, active.get(rota.id, NO_CHANGES)),
        )
        for rota in caller.org.rotas
    ]


@router.get("/rotas/{rota_id}/oncall", response_model=OnCallView, responses=NOT_FOUND)
async def on_call_at(
    request: Request,
    rota_id: str,
    at: Instant | None = Query(default=None, description="An instant with an offset; now"),
    caller: Caller = Depends(authenticate),
) -> OnCallView:
    """Who of the rota is on call at `at` (now if not given), by its changes and its pattern."""
    config: GoldenHourConfig = request.app.state.config
    org, rota = _rota(config, caller, rota_id)
    when = at or datetime.now(UTC)
    _, changes = await _changes(request.app.state.pool, rota_id, when, when + timedelta(seconds=1))
    return _on_call_view(config, org, rota, when, changes)


@router.get("/rotas/{rota_id}/shifts", response_model=list[ShiftView], responses=NOT_FOUND)
async def rota_shifts(
    request: Request,
    rota_id: str,
    start: Instant | None = Query(default=None, alias="from"),
    end: Instant | None = Query(default=None, alias="to"),
    caller: Caller = Depends(authenticate),
) -> list[ShiftView]:
    """Who is on over `[from, to)` (now and the next 14 days if not given), cut where anyone
    changes, each stretch marked with the changes that made it."""
    config: GoldenHourConfig = request.app.state.config
    _, rota = _rota(config, caller, rota_id)
    begin = start or datetime.now(UTC)
    until = end or begin + timedelta(days=14)
    if until <= begin:
        raise _invalid(("query", "to"), "to must be after from", "range_order")
    if until - begin > LONGEST_PAGE:
        raise _invalid(("query", "to"), "a page of shifts spans at most 62 days", "range_length")
    rows, changes = await _changes(request.app.state.pool, rota_id, begin, until)
    views = []
    for seg in timeline(rota, config.tz, begin, until, changes):
        touching = [
            r["change_id"] for r in rows if r["start_at"] < seg.end and r["end_at"] > seg.start
        ]
        views.append(
            ShiftView(
                start=seg.start,
                end=seg.end,
                members=sorted(seg.members),
                pattern_member=seg.pattern_member,
                changed=seg.source in ("override", "temporary"),
                gap=seg.fallback,
                bank_holiday=seg.bank_holiday,
                change_ids=touching if seg.source in ("override", "temporary") else [],
            )
        )
    return views


@router.get("/rotas/{rota_id}/overrides", response_model=list[ChangeView], responses=NOT_FOUND)
async def list_changes(
    request: Request, rota_id: str, caller: Caller = Depends(authenticate)
) -> list[ChangeView]:
    """The rota's changes, live and proposed, that have not ended."""
    _rota(request.app.state.config, caller, rota_id)
    now = datetime.now(UTC)
    rows = await rota_changes.between(
        request.app.state.pool,
        rota_id,
        now,
        datetime.max.replace(tzinfo=UTC),
        ("active", "proposed"),
    )
    return [_change_view(r) for r in rows]


async def _store(
    request: Request, caller: Caller, org: Organisation, rota: Rota, change: rota_changes.NewChange
) -> ChangeView:
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            row = await rota_changes.add(
                conn, rota.id, org.code, change, caller.actor, datetime.now(UTC)
            )
    except rota_changes.Clash as exc:
        raise _clash(exc) from None
    except rota_changes.Unknown as exc:
        raise _invalid(("body", "end"), str(exc), "end_past") from None
    return _change_view(row)


@router.post(
    "/rotas/{rota_id}/overrides",
    status_code=status.HTTP_201_CREATED,
    response_model=ChangeView,
    responses=NOT_FOUND,
)
async def add_override(
    request: Request, rota_id: str, body: OverrideRequest, caller: Caller = Depends(authenticate)
) -> ChangeView:
    """Add, remove or replace a person over `[start, end)`; live at once."""
    org, rota = _rota(request.app.state.config, caller, rota_id)
    _check_may_change(caller)
    _check_person(org, rota, ("member",), body.member)
    if body.by is not None:
        _check_person(org, rota, ("by",), body.by)
    _check_not_past(body.end, datetime.now(UTC))
    if body.action != "add":
        await _check_on_then(request, rota, body)
    change = rota_changes.NewChange.override(body)
    return await _store(request, caller, org, rota, change)


@router.post(
    "/rotas/{rota_id}/swaps",
    status_code=status.HTTP_201_CREATED,
    response_model=ChangeView,
    responses=NOT_FOUND,
)
async def propose_swap(
    request: Request, rota_id: str, body: SwapRequest, caller: Caller = Depends(authenticate)
) -> ChangeView:
    """`member` asks for someone to take their shift starting at `shift_start`; proposed until
    taken (at once when `by` is named)."""
    config: GoldenHourConfig = request.app.state.config
    org, rota = _rota(config, caller, rota_id)
    _check_may_change(caller)
    _check_person(org, rota, ("member",), body.member)
    shift = _shift_of(rota, config, body.shift_start, body.member)
    _check_not_past(shift.end, datetime.now(UTC))
    if body.by is not None:
        _check_person(org, rota, ("by",), body.by)
    change = rota_changes.NewChange(
        "swap", shift.start, shift.end, "replace", body.member, None, reason=body.reason
    )
    now = datetime.now(UTC)
    # Proposed and, when the taker is named, taken in one transaction: a taking that clashes
    # leaves no proposal behind.
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            row = await rota_changes.add(conn, rota.id, org.code, change, caller.actor, now)
            if body.by is not None:
                row = await rota_changes.take_swap(
                    conn, rota.id, row["change_id"], body.by, caller.actor, now
                )
    except rota_changes.Clash as exc:
        raise _clash(exc) from None
    except rota_changes.Unknown as exc:
        raise _invalid(("body", "by"), str(exc), "swap_taker") from None
    return _change_view(row)


async def _check_on_then(request: Request, rota: Rota, body: OverrideRequest) -> None:
    """422 unless `member`, to be removed or replaced, is on at some time in the range: else
    the change would be stored and change nothing, while its maker thinks it does."""
    config: GoldenHourConfig = request.app.state.config
    start = max(body.start, datetime.now(UTC))
    _, changes = await _changes(request.app.state.pool, rota.id, start, body.end)
    if not any(
        body.member in seg.members for seg in timeline(rota, config.tz, start, body.end, changes)
    ):
        raise _invalid(
            ("body", "member"),
            f"{body.member} is not on call at any time from {start.isoformat()} to"
            f" {body.end.isoformat()}: there is nobody to {body.action}",
            "not_on_then",
        )


def _shift_of(rota: Rota, config: GoldenHourConfig, start: datetime, member: str) -> Shift:
    found = shifts(rota, config.tz, start, start + timedelta(microseconds=1))
    shift = next((s for s in found if s.start == start), None)
    if shift is None:
        raise _invalid(
            ("body", "shift_start"),
            f"no shift of rota {rota.id} starts at {start.isoformat()}",
            "no_such_shift",
        )
    if shift.member != member:
        raise _invalid(
            ("body", "member"),
            f"the shift at {start.isoformat()} is {shift.member}'s by the rota, not {member}'s",
            "not_their_shift",
        )
    return shift


@router.post(
    "/rotas/{rota_id}/swaps/{change_id}/take", response_model=ChangeView, responses=NOT_FOUND
)
async def take_swap(
    request: Request,
    rota_id: str,
    change_id: uuid.UUID,
    body: SwapTake,
    caller: Caller = Depends(authenticate),
) -> ChangeView:
    """`by` takes a proposed swap: from then on they are on call for that shift."""
    org, rota = _rota(request.app.state.config, caller, rota_id)
    _check_may_change(caller)
    _check_person(org, rota, ("by",), body.by)
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            row = await rota_changes.take_swap(
                conn, rota_id, change_id, body.by, caller.actor, datetime.now(UTC)
            )
    except rota_changes.Clash as exc:
        raise _clash(exc) from None
    except rota_changes.Unknown as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return _change_view(row)


@router.post(
    "/rotas/{rota_id}/temporary",
    status_code=status.HTTP_201_CREATED,
    response_model=ChangeView,
    responses=NOT_FOUND,
)
async def add_temporary(
    request: Request, rota_id: str, body: TemporaryRequest, caller: Caller = Depends(authenticate)
) -> ChangeView:
    """A temporary schedule: over its range only its own shifts count."""
    org, rota = _rota(request.app.state.config, caller, rota_id)
    _check_may_change(caller)
    for i, shift in enumerate(body.shifts):
        _check_person(org, rota, ("shifts", i, "member"), shift.member)
    _check_not_past(body.end, datetime.now(UTC))
    change = rota_changes.NewChange.temporary(body)
    return await _store(request, caller, org, rota, change)


@router.delete(
    "/rotas/{rota_id}/overrides/{change_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def withdraw_change(
    request: Request, rota_id: str, change_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> Response:
    """Withdraw a change (an override, a swap proposed or taken, a temporary schedule)."""
    _rota(request.app.state.config, caller, rota_id)
    _check_may_change(caller)
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await rota_changes.withdraw(conn, rota_id, change_id, caller.actor, datetime.now(UTC))
    except rota_changes.Unknown as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
