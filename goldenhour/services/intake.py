"""POST /api/v1/events: validate, authorise, then write event, state and outbox row at once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError

from goldenhour.contracts.api import ErrorBody, EventAccepted
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import (
    CheckinRecorded,
    ChildIdentified,
    ChildTransferred,
    Event,
    IntakeRecord,
    PlacementEnded,
    PlacementStarted,
    Submitter,
    parse_event,
)
from goldenhour.services import access
from goldenhour.services.auth import Caller, authenticate

log = structlog.get_logger(__name__)
router = APIRouter()

MAX_BODY = 64 * 1024
OUTBOX_CHANNEL = "goldenhour_outbox"

ACCEPTED = Counter("goldenhour_events_accepted_total", "Events accepted", ["type"])
REFUSED = Counter("goldenhour_events_refused_total", "Events refused", ["reason"])


# The event, its outbox row and its audit line in one round trip; nothing when the id is known.
_RECORD_SQL = """
WITH e AS (
    INSERT INTO events (event_id, type, child_id, occurred_at, received_at, org_code, user_id, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id
), o AS (
    INSERT INTO outbox (topic, key, payload, event_id) SELECT $9, $3, $10, $1 FROM e
), a AS (
    INSERT INTO audit_log (actor, action, child_id, detail) SELECT $11, $12, $3, $13 FROM e
)
SELECT count(*) = 1 FROM e
"""


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
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        REFUSED.labels("too_large").inc()
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body larger than {MAX_BODY} bytes"
        )
    raw = await request.body()
    if len(raw) > MAX_BODY:
        REFUSED.labels("too_large").inc()
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body larger than {MAX_BODY} bytes"
        )
    now = datetime.now(UTC)
    try:
        event = parse_event(raw, now)
    except ValidationError as exc:
        REFUSED.labels("invalid").inc()
        return JSONResponse({"detail": _errors(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        new = await accept_event(request.app, caller, event, now)
    except access.Conflict as exc:
        REFUSED.labels("conflict").inc()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except access.Refusal as exc:
        REFUSED.labels("forbidden").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None
    if not new:
        return JSONResponse(
            {"event_id": str(event.event_id), "status": "duplicate"}, status.HTTP_200_OK
        )
    return JSONResponse(
        {"event_id": str(event.event_id), "status": "accepted"}, status.HTTP_202_ACCEPTED
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
        now = await conn.fetchval("SELECT now()")
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
        inserted = await conn.fetchval(
            _RECORD_SQL,
            event.event_id,
            event.type.value,
            event.child_id,
            event.occurred_at,
            now,
            caller.org.code,
            caller.user.id,
            event.data.model_dump(mode="json"),
            app.state.topics.intake,
            record.model_dump_json().encode(),
            caller.actor,
            f"event.{event.type.value}",
            {"event_id": str(event.event_id)},
        )
        if not inserted:
            return False
        await _project(conn, event, now)
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
    child = await conn.fetchrow(
        "SELECT c.local_authority, p.care_home, p.placement_id FROM children c"
        " LEFT JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL"
        " WHERE c.child_id = $1 FOR UPDATE OF c",
        event.child_id,
    )
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
        "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1 AND org_code = $2"
        " AND type = $3 AND child_id = $4)",
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
        created = await conn.fetchval(
            """
            INSERT INTO children (child_id, local_authority, risk_level, exploitation_types,
                                  description, identified_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (child_id) DO NOTHING
            RETURNING child_id
            """,
            event.child_id,
            data.local_authority,
            data.risk_level.value,
            [t.value for t in data.exploitation_types],
            data.description.model_dump(mode="json") if data.description else {},
            event.occurred_at,
        )
        if created is None:
            raise access.Conflict(access.ALREADY_IDENTIFIED)
    elif isinstance(data, ChildTransferred):
        await _transfer(conn, event.child_id, data)
    elif isinstance(data, PlacementStarted):
        await _lock_live_alerts(conn, event.child_id)
        await conn.execute(
            "UPDATE placements SET ended_at = $2, end_reason = 'superseded'"
            " WHERE child_id = $1 AND ended_at IS NULL",
            event.child_id,
            event.occurred_at,
        )
        # The WHERE keeps an upsert from taking a placement id from the child that holds it.
        held = await conn.fetchval(
            """
            INSERT INTO placements (placement_id, child_id, care_home, risk,
                                    checkin_interval_minutes, curfew, started_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (placement_id) DO UPDATE SET care_home = EXCLUDED.care_home,
                risk = EXCLUDED.risk, checkin_interval_minutes = EXCLUDED.checkin_interval_minutes,
                curfew = EXCLUDED.curfew, ended_at = NULL
            WHERE placements.child_id = EXCLUDED.child_id
            RETURNING placement_id
            """,
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
        await _follow_placement(conn, event.child_id, data)
        if data.risk and data.risk.level:
            await conn.execute(
                "UPDATE children SET risk_level = $2, updated_at = now() WHERE child_id = $1",
                event.child_id,
                data.risk.level.value,
            )
    elif isinstance(data, PlacementEnded):
        await conn.execute(
            "UPDATE placements SET ended_at = $2, end_reason = $3 WHERE placement_id = $1",
            data.placement_id,
            event.occurred_at,
            data.reason,
        )


async def _lock_live_alerts(conn: asyncpg.Connection, child_id: str) -> None:
    # Alerts before placements, as the clock takes them when it opens an alert from the
    # placement it holds: the move and a new alert wait for each other, never in a circle.
    await conn.execute(
        "SELECT 1 FROM alerts WHERE child_id = $1 AND status <> 'resolved' FOR UPDATE", child_id
    )


async def _follow_placement(
    conn: asyncpg.Connection, child_id: str, data: PlacementStarted
) -> None:
    """Every open alert of the child goes where the child went: its new home sees it, and the
    later steps tell that home's manager."""
    moved = await conn.fetch(
        "UPDATE alerts SET placement_id = $2, care_home = $3, updated_at = now()"
        " WHERE child_id = $1 AND status <> 'resolved'"
        " AND (placement_id IS DISTINCT FROM $2 OR care_home IS DISTINCT FROM $3)"
        " RETURNING alert_id",
        child_id,
        data.placement_id,
        data.care_home,
    )
    for row in moved:
        log.info(
            "alert.followed_placement",
            alert_id=str(row["alert_id"]),
            child_id=child_id,
            care_home=data.care_home,
        )


async def _transfer(conn: asyncpg.Connection, child_id: str, data: ChildTransferred) -> None:
    """The child and its open alerts move to the new authority together."""
    await _lock_live_alerts(conn, child_id)
    # A clock opening an alert holds the placement it read: wait for it, then move that too.
    await conn.execute(
        "SELECT 1 FROM placements WHERE child_id = $1 AND ended_at IS NULL FOR UPDATE", child_id
    )
    await conn.execute(
        "UPDATE children SET local_authority = $2, updated_at = now() WHERE child_id = $1",
        child_id,
        data.local_authority,
    )
    moved = await conn.fetch(
        "UPDATE alerts SET local_authority = $2, updated_at = now()"
        " WHERE child_id = $1 AND status <> 'resolved' RETURNING alert_id",
        child_id,
        data.local_authority,
    )
    for row in moved:
        log.info(
            "alert.transferred",
            alert_id=str(row["alert_id"]),
            child_id=child_id,
            local_authority=data.local_authority,
        )
