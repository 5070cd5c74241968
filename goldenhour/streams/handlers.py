"""What the streams worker does with each intake event, idempotent on event_id, and how a
raw intake record is read (or sorted as poison, with the reason)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from pydantic import ValidationError

from goldenhour.contracts.events import CHILD_ID_PATTERN, EventType, IntakeRecord
from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER
from goldenhour.streams import decisions
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.outcome import Outcome

log = structlog.get_logger(__name__)

SCHEMA_VERSIONS = (1,)
_CHILD_ID = re.compile(CHILD_ID_PATTERN)


@dataclass(frozen=True)
class Poison:
    """A record that can never be applied as it is: why, and what could be read of it."""

    reason: str  # parse, schema or validation (see infra.dead_letters.REASONS)
    error: str
    event_id: uuid.UUID | None = None
    child_id: str | None = None


def read_record(raw: bytes | None) -> IntakeRecord | Poison:
    """The intake record in `raw`, or why it is poison; never raises."""
    try:
        doc = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Poison("parse", f"not JSON: {exc}")
    envelope = doc.get("event") if isinstance(doc, dict) else None
    envelope = envelope if isinstance(envelope, dict) else {}
    event_id = _uuid(envelope.get("event_id"))
    child_id = envelope.get("child_id")
    # Kept only when it is a well-formed case reference: anything else may be a name, or bytes
    # the database would refuse.
    child_id = child_id if isinstance(child_id, str) and _CHILD_ID.match(child_id) else None
    version = envelope.get("schema_version", 1)
    if version not in SCHEMA_VERSIONS:
        return Poison("schema", f"unknown schema_version {version!r}", event_id, child_id)
    try:
        return IntakeRecord.model_validate_json(raw or b"")
    except ValidationError as exc:
        return Poison("validation", str(exc)[:2000], event_id, child_id)
    except Exception as exc:  # a validator that raises: the record's fault
        return Poison("validation", repr(exc)[:2000], event_id, child_id)


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


async def handle_intake(
    pool: asyncpg.Pool,
    watch: ChildWatch,
    clock: ClockStore,
    record: IntakeRecord,
    now: datetime | None = None,
) -> Outcome:
    """Apply one intake event in one transaction; a replayed event changes nothing.

    Every time it writes (due times, message rows) is reckoned from `now`: the database's
    clock unless a test gives one, so a worker host whose clock is off fires nothing early or
    late."""
    event = record.event
    async with pool.acquire() as conn, conn.transaction():
        if now is None:
            now = await conn.fetchval("SELECT now()")
        first = await conn.fetchval(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            CONSUMER,
            event.event_id,
        )
        if not first:
            log.info("intake.replayed", event_id=str(event.event_id), child_id=event.child_id)
            return Outcome()
        return await apply_intake(conn, watch, clock, record, now)


async def apply_intake(
    conn: asyncpg.Connection,
    watch: ChildWatch,
    clock: ClockStore,
    record: IntakeRecord,
    now: datetime,
) -> Outcome:
    """Everything one intake event changes, in lock order (child, clocks, alerts): the
    watchers' record and clocks, then the child's risk, the missing-child clock and the
    alerts the watchers open and close."""
    decided = await watch.on_intake(conn, record, now)
    if decided is None:
        return Outcome()
    await decisions.apply_risk(clock, conn, decided, now)
    outcome = Outcome()
    if record.event.type == EventType.absence_reported:
        outcome.extend(await clock.on_absence(conn, record, now))
    elif record.event.type == EventType.child_located:
        outcome.extend(await clock.on_located(conn, record, now))
    outcome.extend(await decisions.apply_alerts(clock, conn, decided, now))
    return outcome
