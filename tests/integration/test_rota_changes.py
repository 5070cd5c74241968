"""A rota's changes in Postgres: stored, read back as resolution reads them, refused when they
clash, audited, and never two at once past the clash check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from goldenhour.contracts.oncall import Override, Shift
from goldenhour.infra import rota_changes
from goldenhour.infra.rota_changes import Clash, NewChange, Unknown

ROTA = "lbh-edt"
T0 = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
NIGHT = timedelta(hours=16)


def override(action: str, member: str, by: str | None = None, start=T0, end=T0 + NIGHT):
    return NewChange("override", start, end, action, member, by, reason="sickness")


async def store(pool: asyncpg.Pool, change: NewChange, rota: str = ROTA) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        return await rota_changes.add(conn, rota, "LBH", change, "user:lbh-dm1", T0 - NIGHT)


async def test_an_override_is_read_back_where_it_is_active_only(pool: asyncpg.Pool) -> None:
    await store(pool, override("replace", "lbh-edt-1", "lbh-edt-2"))
    inside = await rota_changes.active_at(pool, T0 + timedelta(hours=1))
    assert inside[ROTA].overrides == (
        Override(T0, T0 + NIGHT, "replace", "lbh-edt-1", "lbh-edt-2"),
    )
    assert await rota_changes.active_at(pool, T0 + NIGHT) == {}  # half-open: the end is out
    assert await rota_changes.active_at(pool, T0 - timedelta(microseconds=1)) == {}
    audited = await pool.fetch("SELECT action, actor, detail FROM audit_log")
    assert [(a["action"], a["actor"]) for a in audited] == [
        ("rota.override_active", "user:lbh-dm1")
    ]
    assert audited[0]["detail"]["by"] == "lbh-edt-2"


async def test_one_person_in_two_overlapping_changes_is_refused_naming_the_first(
    pool: asyncpg.Pool,
) -> None:
    first = await store(pool, override("remove", "lbh-edt-1"))
    with pytest.raises(Clash) as clash:
        await store(pool, override("add", "lbh-edt-1", start=T0 + timedelta(hours=15)))
    assert [r["change_id"] for r in clash.value.rows] == [first["change_id"]]
    # As the one replacing someone, too.
    with pytest.raises(Clash):
        await store(pool, override("replace", "lbh-edt-3", "lbh-edt-1"))
    # Someone else, or the same person just after, is no clash; nor is another rota.
    await store(pool, override("add", "lbh-edt-2"))
    await store(pool, override("add", "lbh-edt-1", start=T0 + NIGHT, end=T0 + 2 * NIGHT))
    await store(pool, override("add", "lbh-edt-1"), rota="mps-cr")
    assert await pool.fetchval("SELECT count(*) FROM rota_changes") == 4


async def test_two_managers_adding_clashing_overrides_at_once_store_one(
    pool: asyncpg.Pool,
) -> None:
    results = await asyncio.gather(
        *(store(pool, override("add", "lbh-edt-1")) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, asyncpg.Record) for r in results) == 1
    assert sum(isinstance(r, Clash) for r in results) == 5
    assert await pool.fetchval("SELECT count(*) FROM rota_changes") == 1


async def test_a_swap_counts_once_taken_and_not_before(pool: asyncpg.Pool) -> None:
    proposed = await store(pool, NewChange("swap", T0, T0 + NIGHT, "replace", "lbh-edt-1"))
    assert proposed["status"] == "proposed"
    assert await rota_changes.active_at(pool, T0) == {}
    async with pool.acquire() as conn, conn.transaction():
        taken = await rota_changes.take_swap(
            conn, ROTA, proposed["change_id"], "lbh-edt-3", "user:lbh-dm1", T0 - NIGHT
        )
    assert (taken["status"], taken["by_member"]) == ("active", "lbh-edt-3")
    assert (await rota_changes.active_at(pool, T0))[ROTA].overrides[0].by == "lbh-edt-3"
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Unknown):  # taken already
            await rota_changes.take_swap(
                conn, ROTA, proposed["change_id"], "lbh-edt-2", "user:lbh-dm1", T0
            )


async def test_a_withdrawn_change_no_longer_counts_and_stays_on_record(
    pool: asyncpg.Pool,
) -> None:
    row = await store(pool, override("remove", "lbh-edt-1"))
    async with pool.acquire() as conn, conn.transaction():
        await rota_changes.withdraw(conn, ROTA, row["change_id"], "user:lbh-dm1", T0)
        with pytest.raises(Unknown):
            await rota_changes.withdraw(conn, ROTA, row["change_id"], "user:lbh-dm1", T0)
    assert await rota_changes.active_at(pool, T0 + timedelta(hours=1)) == {}
    assert await pool.fetchval("SELECT status FROM rota_changes") == "withdrawn"
    # The same person may be changed again over that night.
    await store(pool, override("remove", "lbh-edt-1"))


async def test_a_temporary_schedule_is_read_back_with_its_shifts(pool: asyncpg.Pool) -> None:
    christmas = Shift(T0, T0 + NIGHT, "lbh-edt-2")
    await store(pool, NewChange("temporary", T0, T0 + 3 * NIGHT, shifts=(christmas,)))
    with pytest.raises(Clash):
        await store(pool, NewChange("temporary", T0 + NIGHT, T0 + 4 * NIGHT, shifts=()))
    # Nor an override inside it: it would count for nothing, as the schedule wins.
    with pytest.raises(Clash):
        await store(pool, override("remove", "lbh-edt-2"))
    found = (await rota_changes.active_at(pool, T0 + timedelta(hours=2)))[ROTA]
    assert [t.shifts for t in found.temporaries] == [(christmas,)]
    assert found.overrides == ()


async def test_a_change_counts_from_when_it_is_made_and_ends_now_when_withdrawn(
    pool: asyncpg.Pool,
) -> None:
    """Who was on call before a change was made, or until it was withdrawn, is the record of
    who was paged: neither is rewritten."""
    made_at = T0 + timedelta(hours=2)
    async with pool.acquire() as conn, conn.transaction():
        row = await rota_changes.add(
            conn, ROTA, "LBH", override("remove", "lbh-edt-1"), "user:lbh-dm1", made_at
        )
    assert row["start_at"] == made_at  # asked from T0, counted from when it was made
    withdrawn_at = made_at + timedelta(hours=3)
    async with pool.acquire() as conn, conn.transaction():
        ended = await rota_changes.withdraw(conn, ROTA, row["change_id"], "user:x", withdrawn_at)
        assert (ended["status"], ended["end_at"]) == ("active", withdrawn_at)
        with pytest.raises(Unknown):  # ended: nothing left to withdraw
            await rota_changes.withdraw(conn, ROTA, row["change_id"], "user:x", withdrawn_at)
    assert ROTA in await rota_changes.active_at(pool, withdrawn_at - timedelta(seconds=1))
    assert await rota_changes.active_at(pool, withdrawn_at) == {}
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Unknown):  # ended before it was made
            await rota_changes.add(
                conn, ROTA, "LBH", override("add", "lbh-edt-2"), "user:x", T0 + NIGHT
            )


async def test_a_swap_asked_can_be_withdrawn_asked_once_and_taken_only_before_it_ends(
    pool: asyncpg.Pool,
) -> None:
    asked = NewChange("swap", T0, T0 + NIGHT, "replace", "lbh-edt-1")
    first = await store(pool, asked)
    with pytest.raises(Clash):
        await store(pool, asked)
    async with pool.acquire() as conn, conn.transaction():
        gone = await rota_changes.withdraw(conn, ROTA, first["change_id"], "user:x", T0)
    assert gone["status"] == "withdrawn"
    again = await store(pool, asked)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Unknown):
            await rota_changes.take_swap(
                conn, ROTA, again["change_id"], "lbh-edt-2", "user:x", T0 + NIGHT
            )
        midway = T0 + timedelta(hours=4)
        taken = await rota_changes.take_swap(
            conn, ROTA, again["change_id"], "lbh-edt-2", "user:x", midway
        )
    assert (taken["start_at"], taken["end_at"]) == (midway, T0 + NIGHT)
