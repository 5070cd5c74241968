"""An alert the clock opens while the child is moved still ends up with the child: the clock
holds the placement it read, a move waits for it, and the worker puts right what it finds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from goldenhour.dev.waiting import eventually
from goldenhour.streams.follow import current_placement, follow_child

CHILD = "LBH-2026-0042"


async def seed(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO children (child_id, local_authority, risk_level, identified_at)"
        " VALUES ($1, 'LBH', 'high', $2)",
        CHILD,
        now,
    )
    await conn.execute(
        "INSERT INTO placements (placement_id, child_id, care_home, started_at)"
        " VALUES ($1, $2, 'OAK', $3)",
        f"{CHILD}-P1",
        CHILD,
        now,
    )


async def move_to_elm(conn: asyncpg.Connection) -> None:
    """What the API does to the placements when the child is placed at Elm."""
    await conn.execute(
        "UPDATE placements SET ended_at = now(), end_reason = 'superseded'"
        " WHERE child_id = $1 AND ended_at IS NULL",
        CHILD,
    )
    await conn.execute(
        "INSERT INTO placements (placement_id, child_id, care_home, started_at)"
        " VALUES ($1, $2, 'ELM', now())",
        f"{CHILD}-P2",
        CHILD,
    )


async def open_alert(conn: asyncpg.Connection, placement_id: str, care_home: str, la: str) -> None:
    await conn.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " placement_id, care_home, local_authority, ack_code, opened_at)"
        " VALUES ($1, $2, 'missed_checkin', 'open', 'high', 'missed_checkin', now(), $3, $4,"
        " $5, '1234', now())",
        uuid.uuid4(),
        CHILD,
        placement_id,
        care_home,
        la,
    )


@pytest.fixture
async def conns(migrated_db):
    opened = [await asyncpg.connect(migrated_db) for _ in range(2)]
    await seed(opened[0])
    yield opened
    for conn in opened:
        await conn.close()


async def test_a_move_waits_for_the_placement_the_clock_holds(conns):
    clock, api = conns
    async with clock.transaction():
        held = await current_placement(clock, CHILD)
        assert held is not None and held["care_home"] == "OAK"
        await api.execute("SET lock_timeout = '200ms'")
        # Without the hold the move would commit here and miss the alert about to be written.
        with pytest.raises(asyncpg.LockNotAvailableError):
            async with api.transaction():
                await move_to_elm(api)


async def test_a_clock_that_waited_on_a_move_reads_the_new_placement(conns):
    clock, api = conns
    move = api.transaction()
    await move.start()
    await move_to_elm(api)
    async with clock.transaction():
        reading = asyncio.create_task(current_placement(clock, CHILD))
        pid = clock.get_server_pid()
        await eventually(
            lambda: api.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            ),
            4,
            "the clock's read to wait on the move",
            every=0.02,
        )
        await move.commit()
        held = await reading
    assert held is not None
    assert (held["placement_id"], held["care_home"]) == (f"{CHILD}-P2", "ELM")


async def test_the_worker_brings_a_stale_alert_to_the_child(conns):
    conn, _ = conns
    await move_to_elm(conn)
    await conn.execute("UPDATE children SET local_authority = 'LBI' WHERE child_id = $1", CHILD)
    await open_alert(conn, f"{CHILD}-P1", "OAK", "LBH")

    assert await follow_child(conn, CHILD) == 1

    alert = await conn.fetchrow(
        "SELECT placement_id, care_home, local_authority FROM alerts WHERE child_id = $1", CHILD
    )
    assert tuple(alert) == (f"{CHILD}-P2", "ELM", "LBI")
    assert await follow_child(conn, CHILD) == 0


async def test_an_alert_of_a_child_with_no_placement_keeps_its_home(conns):
    conn, _ = conns
    await conn.execute("UPDATE placements SET ended_at = now() WHERE child_id = $1", CHILD)
    await conn.execute("UPDATE children SET local_authority = 'LBI' WHERE child_id = $1", CHILD)
    await open_alert(conn, f"{CHILD}-P1", "OAK", "LBH")

    assert await follow_child(conn, CHILD) == 1

    alert = await conn.fetchrow(
        "SELECT placement_id, care_home, local_authority FROM alerts WHERE child_id = $1", CHILD
    )
    assert tuple(alert) == (f"{CHILD}-P1", "OAK", "LBI")
