"""POST /api/v1/events: validate, authorise, then write event, state and outbox row at once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from goldenhour.contracts.api import ErrorBody, EventAccepted
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import (
    CheckinRecorded,
    ChildIdentified,
    ChildTransferred,
    Event,
    EventType,
    IntakeRecord,
    PlacementEnded,
    PlacementStarted,
    Submitter,
    parse_event,
)
from goldenhour.infra import outbox
from goldenhour.infra.db import audit
from goldenhour.reports import episode_store
from goldenhour.services import access, db
from goldenhour.services.auth import Caller, authenticate
from goldenhour.streams import alert_commands, children

log = structlog.get_logger(__name__)
router = APIRouter()

ACCEPTED = Counter("goldenhour_events_accepted_total", "Events accepted", ["type"])
REFUSED = Counter("goldenhour_events_refused_total", "Events refused", ["type", "reason"])
# The type label of a refusal whose body names no known type: the labels stay a closed set
# whatever a caller sends.
UNKNOWN_TYPE = "unknown"

# No valid event comes near it: every free-text field is bounded.
MAX_EVENT_BODY = 64 * 1024
EVENTS_PATH = "/api/v1/events"  # where services/app.py mounts this router's /events


class _TypeOnly(BaseModel):
    type: EventType


def _claimed_type(raw: bytes) -> str:
    """The known type an invalid body says it is, so refusals count by type too."""
    try:
        return _TypeOnly.model_validate_json(raw).type.value
    except ValidationError:
        return UNKNOWN_TYPE


def count_body_refused(path: str) -> None:
    """A body the app's cap refused before any route read it: an event's, if it was for
    this route (its type unread)."""
    if path == EVENTS_PATH:
        REFUSED.labels(UNKNOWN_TYPE, "too_large").inc()


def _refuse_too_large() -> None:
    REFUSED.labels(UNKNOWN_TYPE, "too_large").inc()
    raise HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body larger than {MAX_EVENT_BODY} bytes"
    )


def _errors(exc: ValidationError) -> list[dict]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses={
        200: {"model": EventAccepted, "description": "A known event_id: nothing changed"},
        409: {"model": ErrorBody, "description": "The event conflicts with the child's record"},
    },
)
async def submit_event(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """Accept one intake event; a known event_id answers 200 duplicate and changes nothing."""
    # The app's cap (services.http_limits) stops most large bodies before they are read; this
    # one holds for events even where an operator has raised that.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_EVENT_BODY:
        _refuse_too_large()
    raw = await request.body()
    if len(raw) > MAX_EVENT_BODY:
        _refuse_too_large()
    now = datetime.now(UTC)
    try:
        event = parse_event(raw, now)
    except ValidationError as exc:
        REFUSED.labels(_claimed_type(raw), "invalid").inc()
        return JSONResponse({"detail": _errors(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        new = await accept_event(request.app, caller, event, now)
    except access.Conflict as exc:
        REFUSED.labels(event.type.value, "conflict").inc()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except access.Refusal as exc:
        REFUSED.labels(event.type.value, "forbidden").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None
    answer = EventAccepted(event_id=event.event_id, status="accepted" if new else "duplicate")
    return JSONResponse(
        answer.model_dump(mode="json"),
        status.HTTP_202_ACCEPTED if new else status.HTTP_200_OK,
    )


async def accept_event(app: FastAPI, caller: Caller, event: Event, now: datetime) -> bool:
    """Write event, the child's record and the outbox row in one transaction; False: a repeat.

    The one way in for every intake event, from the API and the console's forms alike. Raises
    `access.Refusal` (nothing written) when the caller may not submit it, `access.Conflict`
    when it contradicts the record (another child's placement, a second identification).
    `now` validated the event; the time it is recorded as accepted is the database's, as every
    clock reads it, so an API host whose clock is off neither moves an alert's anchor nor flags
    honest reports.
    """
    pool: asyncpg.Pool = app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        now = await conn.fetchval(db.DATABASE_NOW)
        record = IntakeRecord(
            event=event,
            submitted_by=Submitter(org_code=caller.org.code, user_id=caller.user.id),
            received_at=now,
        )
        try:
            await _authorise(app.state.config, conn, caller, event)
        except access.Refusal:
            # A retry of an accepted event may be refused by what that event did itself (an
            # identification, a transfer away): it is the repeat it looks like.
            if await _recorded_already(conn, caller, event):
                return False
            raise
        inserted = await outbox.record_event(
            conn,
            event_id=event.event_id,
            event_type=event.type.value,
            child_id=event.child_id,
            occurred_at=event.occurred_at,
            received_at=now,
            org_code=caller.org.code,
            user_id=caller.user.id,
            data=event.data.model_dump(mode="json"),
            topic=app.state.topics.intake,
            payload=record.model_dump_json().encode(),
        )
        if not inserted:
            return False
        await audit(
            conn,
            f"event.{event.type.value}",
            event.child_id,
            None,
            {"event_id": str(event.event_id)},
            actor=caller.actor,
        )
        await _project(conn, event, now)
        if event.type.value in episode_store.BEARING:
            await episode_store.rebuild_child(conn, event.child_id)
    app.state.relay.nudge()
    ACCEPTED.labels(event.type.value).inc()
    log.info(
        "event.accepted",
        event_id=str(event.event_id),
        child_id=event.child_id,
        type=event.type.value,
        org=caller.org.code,
    )
    return True


async def _authorise(
    config: GoldenHourConfig, conn: asyncpg.Connection, caller: Caller, event: Event
) -> None:
    child = await conn.fetchrow(db.LOCK_CHILD_WITH_PLACEMENT, event.child_id)
    agencies = (
        access.agencies(config, child["local_authority"], child["care_home"], child["placement_id"])
        if child
        else None
    )
    data = event.data
    placement_id = (
        getattr(data, "placement_id", None) if caller.org.kind.value == "care_home" else None
    )
    if isinstance(data, ChildIdentified):
        # Before the child is looked at: whether a case reference exists is child data, and
        # an agency may only ask about the authorities it acts for.
        access.check_identifier(config, caller.org, data.local_authority, event.child_id)
    access.check_submit(caller.org, event.type.value, agencies, placement_id)
    if isinstance(data, ChildTransferred) and agencies is not None:
        access.check_transfer(config, agencies, data.local_authority)
    if isinstance(data, PlacementStarted):
        home = config.org(data.care_home)
        if home is None or home.kind.value != "care_home":
            raise access.Refusal(f"unknown care home {data.care_home}")
    if isinstance(data, CheckinRecorded | PlacementEnded) and (
        agencies is None or agencies.placement_id != data.placement_id
    ):
        raise access.Refusal(f"placement {data.placement_id} is not this child's current placement")


async def _recorded_already(conn: asyncpg.Connection, caller: Caller, event: Event) -> bool:
    return await conn.fetchval(
        db.EVENT_RECORDED_ALREADY,
        event.event_id,
        caller.org.code,
        event.type.value,
        event.child_id,
    )


async def _project(conn: asyncpg.Connection, event: Event, now: datetime) -> None:
    """Keep the child's record and placement current, in the same transaction as the event."""
    data = event.data
    if isinstance(data, ChildIdentified):
        # Two first identifications racing: the loser finds the child there and is refused.
        created = await children.identify(
            conn,
            event.child_id,
            data.local_authority,
            data.risk_level.value,
            [t.value for t in data.exploitation_types],
            data.description.model_dump(mode="json") if data.description else {},
            event.occurred_at,
        )
        if not created:
            raise access.Conflict(access.ALREADY_IDENTIFIED)
    elif isinstance(data, ChildTransferred):
        await _transfer(conn, event.child_id, data)
    elif isinstance(data, PlacementStarted):
        await alert_commands.lock_live_alerts(conn, event.child_id)
        await conn.execute(db.SUPERSEDE_PLACEMENTS, event.child_id, event.occurred_at)
        held = await conn.fetchval(
            db.START_PLACEMENT,
            data.placement_id,
            event.child_id,
            data.care_home,
            data.risk.model_dump(mode="json") if data.risk else {},
            data.checkin_interval_minutes,
            data.curfew,
            event.occurred_at,
        )
        if held is None:
            raise access.Conflict(
                f"placement {data.placement_id} belongs to another child;"
                " a new placement needs a placement_id of its own"
            )
        await alert_commands.follow_placement(
            conn, event.child_id, data.placement_id, data.care_home
        )
        if data.risk and data.risk.level:
            await children.set_risk(conn, event.child_id, data.risk.level.value)
    elif isinstance(data, PlacementEnded):
        await conn.execute(
            db.END_PLACEMENT,
            data.placement_id,
            event.occurred_at,
            data.reason,
        )


async def _transfer(conn: asyncpg.Connection, child_id: str, data: ChildTransferred) -> None:
    """The child and its open alerts move to the new authority together."""
    await alert_commands.lock_live_alerts(conn, child_id)
    # A clock opening an alert holds the placement it read: wait for it, then move that too.
    await conn.execute(db.LOCK_CURRENT_PLACEMENT, child_id)
    await children.transfer(conn, child_id, data.local_authority)
    await alert_commands.follow_transfer(conn, child_id, data.local_authority)
