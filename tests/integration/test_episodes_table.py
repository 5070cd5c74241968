"""The `episodes` table in Postgres, rebuilt from the `events` table: the same rows however the
events arrive, whom each episode belongs to across a transfer, and the SSDA903 Missing table
read from it, checked by the sector's validator on the edge cases of a collection year."""

from __future__ import annotations

import csv
import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from goldenhour.reports import episode_store, figure_store
from goldenhour.reports.ssda903 import missing_table, to_csv
from tests.ssda903.validator import check_missing_table

LONDON = ZoneInfo("Europe/London")
H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 20, 21, 0, tzinfo=UTC)

_INSERT = """
INSERT INTO events (event_id, type, child_id, occurred_at, received_at, org_code, user_id, data)
VALUES ($1, $2, $3, $4, $4, $5, 'tester', $6)
"""


def ev(kind: str, child: str, at: datetime, **data: object) -> tuple:
    return (uuid.uuid4(), kind, child, at, "LBH", _json(data))


def _json(data: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def identified(child: str, at: datetime, la: str = "LBH", **more: object) -> tuple:
    return ev("child.identified", child, at, local_authority=la, risk_level="high", **more)


def absence(child: str, seen: datetime, classification: str = "missing") -> tuple:
    return ev("absence.reported", child, seen + H, last_seen_at=seen, classification=classification)


def located(child: str, at: datetime) -> tuple:
    return ev("child.located", child, at, located_at=at)


# One child's history across the end of the 2025 collection year (31 March 2026):
HISTORY = [
    identified(
        "LBH-2026-0042",
        T0 - 30 * D,
        ssda903_id="LBH0042",
        date_of_birth="2011-03-01",
        date_of_birth_estimated=True,
    ),
    ev("placement.started", "LBH-2026-0042", T0 - 29 * D, placement_id="P1", care_home="OAK"),
    absence("LBH-2026-0042", T0),  # 20 March
    absence("LBH-2026-0042", T0 + 3 * H, "away"),  # reported again during it: the same episode
    located("LBH-2026-0042", T0 + 12 * D),  # 1 April: open at 31 March
    absence("LBH-2026-0042", T0 + 20 * D, "away"),  # 9 April, away
    located("LBH-2026-0042", T0 + 20 * D + 5 * H),
    # Left care with an episode open: the episode stays open, MIS_END blank.
    absence("LBH-2026-0042", T0 + 40 * D),
    ev("placement.ended", "LBH-2026-0042", T0 + 41 * D, placement_id="P1", reason="left care"),
    # A child whose date of birth is unknown, transferred to Islington after one episode.
    identified("LBH-2026-0043", T0 - 10 * D),
    absence("LBH-2026-0043", T0 + 15 * D),
    located("LBH-2026-0043", T0 + 15 * D + 2 * H),
    ev("child.transferred", "LBH-2026-0043", T0 + 16 * D, local_authority="LBI"),
    absence("LBH-2026-0043", T0 + 18 * D),
]
CHILDREN = sorted({e[2] for e in HISTORY})


async def record(pool: asyncpg.Pool, events: list[tuple]) -> None:
    """Record each event as intake does: the event, then the child's rebuild, one transaction."""
    for e in events:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT, *e)
            await episode_store.rebuild_child(conn, e[2])


async def table(pool: asyncpg.Pool) -> list[dict]:
    rows = await pool.fetch("SELECT * FROM episodes ORDER BY child_id, started_at")
    return [dict(r) for r in rows]


async def test_the_table_is_the_same_whatever_order_the_events_arrive_in(
    pool: asyncpg.Pool,
) -> None:
    await record(pool, HISTORY)
    first = await table(pool)
    assert [(r["child_id"], r["classification"], r["local_authority"]) for r in first] == [
        ("LBH-2026-0042", "missing", "LBH"),
        ("LBH-2026-0042", "away", "LBH"),
        ("LBH-2026-0042", "missing", "LBH"),
        ("LBH-2026-0043", "missing", "LBH"),
        ("LBH-2026-0043", "missing", "LBI"),  # after the transfer: Islington's
    ]
    assert first[0]["care_home"] == "OAK" and first[0]["ssda903_id"] == "LBH0042"
    assert first[2]["ended_at"] is None
    assert first[3]["date_of_birth"] is None

    # Late and shuffled, and every event twice: the same rows.
    await pool.execute("TRUNCATE events, episodes")
    shuffled = list(HISTORY)
    random.Random(7).shuffle(shuffled)
    await record(pool, shuffled)
    assert await table(pool) == first

    # Rebuilding every child from the log, as `goldenhour report rebuild-episodes` does.
    await pool.execute("DELETE FROM episodes")
    async with pool.acquire() as conn:
        assert await episode_store.rebuild_all(conn) == (2, 5)
    assert await table(pool) == first


async def missing_csv(pool: asyncpg.Pool, authority: str, year: int) -> str:
    async with pool.acquire() as conn:
        spells = await figure_store.spells(conn, authority, year, LONDON)
    return to_csv(missing_table(spells, year, LONDON))


async def test_the_missing_table_of_each_year_passes_the_validator(pool: asyncpg.Pool) -> None:
    await record(pool, HISTORY)
    last_year = list(csv.reader(io.StringIO(await missing_csv(pool, "LBH", 2025))))
    this_year = list(csv.reader(io.StringIO(await missing_csv(pool, "LBH", 2026))))
    assert last_year[1:] == [["LBH0042", "01/03/2011", "M", "20/03/2026", ""]]
    assert this_year[1:] == [
        ["LBH-2026-0043", "", "M", "04/04/2026", "05/04/2026"],  # no SSDA903 id, no DOB
        ["LBH0042", "01/03/2011", "M", "20/03/2026", "01/04/2026"],  # carried in
        ["LBH0042", "01/03/2011", "A", "09/04/2026", "10/04/2026"],  # 22:00 to 03:00
        ["LBH0042", "01/03/2011", "M", "29/04/2026", ""],  # left care, still open
    ]
    islington = list(csv.reader(io.StringIO(await missing_csv(pool, "LBI", 2026))))
    assert [r[3] for r in islington[1:]] == ["07/04/2026"]
    for year in (2025, 2026):
        report = check_missing_table(await missing_csv(pool, "LBH", year), year)
        assert report["errors"] == [], report
