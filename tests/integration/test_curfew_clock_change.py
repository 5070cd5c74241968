"""A curfew across the autumn clock change, on the real database, with the clock passed in.

Curfew 22:00 Europe/London: 21:00 UTC on the night of 24 October 2026 (summer time) and 22:00 UTC
from 25 October (winter time). The stores run exactly as in the streams worker; only `now` is
chosen, so three nights pass in a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord, Submitter, parse_event
from goldenhour.dev.london import directory, event
from goldenhour.streams import watch_timers
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.handlers import apply_intake
from tests.integration.rows import seed_child

CHILD = "LBH-2026-0077"
GRACE = timedelta(minutes=15)


def at(day: int, hhmm: str) -> datetime:
    hour, minute = (int(p) for p in hhmm.split(":"))
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def seeded(pool: asyncpg.Pool) -> None:
    await seed_child(pool, CHILD, "P-7", curfew="22:00", at=at(24, "12:00"))
    await pool.execute("UPDATE children SET identified_at = $1", at(24, "09:00"))


@dataclass(frozen=True)
class Worker:
    """The two peers the intake handler and the timer claimer call."""

    watch: ChildWatch
    clock: ClockStore


def watch() -> Worker:
    config = GoldenHourConfig.model_validate(directory()[0])
    return Worker(ChildWatch(config), ClockStore(config))


async def intake(pool, store: Worker, kind: str, data: dict, when: datetime) -> None:
    record = IntakeRecord(
        event=parse_event(event(kind, CHILD, data, at=when), when),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=when,
    )
    async with pool.acquire() as conn, conn.transaction():
        await apply_intake(conn, store.watch, store.clock, record, when)


async def check_in(pool, store: Worker, when: datetime) -> None:
    """The care home records the child seen at `when`."""
    data = {"placement_id": "P-7", "seen_at": when.isoformat()}
    await intake(pool, store, "checkin.recorded", data, when)


async def pending_curfew_due(pool) -> datetime:
    """When the pending curfew timer is due."""
    pending = await pool.fetchrow(
        "SELECT due_at FROM watch_timers WHERE kind = 'curfew' AND status = 'pending'"
    )
    return pending["due_at"]


async def tick(pool, store: Worker, now: datetime) -> None:
    async with pool.acquire() as conn:
        await watch_timers.claim_due(store.watch, store.clock, conn, now, 50)


async def concerns(pool) -> list[datetime]:
    rows = await pool.fetch(
        "SELECT anchor_at FROM alerts WHERE child_id = $1 AND kind = 'curfew' ORDER BY anchor_at",
        CHILD,
    )
    return [r["anchor_at"] for r in rows]


async def test_curfew_holds_at_22_00_local_across_the_autumn_clock_change(pool):
    store = watch()
    await intake(
        pool,
        store,
        "placement.started",
        {"placement_id": "P-7", "care_home": "OAK", "curfew": "22:00"},
        at(24, "12:00"),
    )
    assert await pending_curfew_due(pool) == at(24, "21:00") + GRACE  # 22:00 BST

    # Night 1 (summer time): no check-in after 22:00 BST -> a concern at 21:15 UTC (grace run).
    await tick(pool, store, at(24, "21:14"))
    assert await concerns(pool) == []  # not before the grace has run
    await tick(pool, store, at(24, "21:16"))
    assert await concerns(pool) == [at(24, "21:15")]
    told = await pool.fetch("SELECT DISTINCT contact_id FROM notifications")
    assert {r["contact_id"] for r in told} == {"oak-mgr", "lbh-sw"}

    # The next morning a check-in closes the concern.
    await check_in(pool, store, at(25, "08:00"))
    status = await pool.fetchval("SELECT status FROM alerts WHERE kind = 'curfew'")
    assert status == "resolved"

    # Night 2 (the clocks went back that morning): curfew is 22:00 GMT = 22:00 UTC. A check-in
    # at 22:05 satisfies it; one at 21:30 UTC (before curfew) would not have.
    assert await pending_curfew_due(pool) == at(25, "22:00") + GRACE
    await check_in(pool, store, at(25, "22:05"))
    await tick(pool, store, at(25, "22:16"))
    assert await concerns(pool) == [at(24, "21:15")]

    # Night 3: a check-in before curfew only; the concern is raised at 22:15 UTC, once.
    await check_in(pool, store, at(26, "21:30"))
    await tick(pool, store, at(26, "22:16"))
    await tick(pool, store, at(26, "22:17"))
    assert await concerns(pool) == [at(24, "21:15"), at(26, "22:15")]
    fired = await pool.fetchval(
        "SELECT count(*) FROM watch_timers WHERE kind = 'curfew' AND status = 'fired'"
    )
    assert fired == 3
