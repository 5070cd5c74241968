"""What the golden-hour clock does with each intake event, idempotent on event_id."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from contracts.events import IntakeRecord
from streams.clock_store import Outcome
from streams.watch_store import WatchStore

log = structlog.get_logger(__name__)

CONSUMER = "streams.golden_hour_clock"


async def handle_intake(
    pool: asyncpg.Pool, watch: WatchStore, record: IntakeRecord, now: datetime
) -> Outcome:
    """Apply one intake event in one transaction; a replayed event changes nothing."""
    event = record.event
    async with pool.acquire() as conn, conn.transaction():
        first = await conn.fetchval(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            CONSUMER,
            event.event_id,
        )
        if not first:
            log.info("intake.replayed", event_id=str(event.event_id), child_id=event.child_id)
            return Outcome()
        return await watch.on_intake(conn, record, now)
