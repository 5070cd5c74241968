"""The board's live feed against real Postgres: it listens only while a board is open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from goldenhour.services.console.board import BoardFeed

LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
)


@pytest.fixture
async def db(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_db)
    yield conn
    await conn.close()


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def open_alert(db: asyncpg.Connection) -> uuid.UUID:
    alert_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " local_authority, ack_code, opened_at)"
        " VALUES ($1, $2, 'missing', 'open', 'high', 'high', now(), 'LBH', $3, now())",
        alert_id,
        f"LBH-{alert_id.hex[:8]}",
        str(uuid.uuid4().int)[:4],
    )
    return alert_id


async def test_listens_only_while_a_board_is_open(migrated_db: str, db) -> None:
    feed = BoardFeed(migrated_db, linger_s=0.3)
    await feed.start()
    try:
        await asyncio.sleep(0.5)
        assert not feed.listening and await db.fetchval(LISTENERS) == 0
        await open_alert(db)  # nobody watches: announced to no one, and nothing breaks

        with feed.subscribe() as queue:
            # Once listening, the board is told to reload: it may have missed changes.
            assert await asyncio.wait_for(queue.get(), 5) == "*"
            assert feed.listening and await db.fetchval(LISTENERS) == 1
            alert_id = await open_alert(db)
            assert await asyncio.wait_for(queue.get(), 5) == str(alert_id)

        # The last board closed: the listening connection goes after the linger.
        async def closed() -> bool:
            return not feed.listening and await db.fetchval(LISTENERS) == 0

        await eventually(closed)

        with feed.subscribe() as queue:  # and comes back for the next board
            assert await asyncio.wait_for(queue.get(), 5) == "*"
            assert feed.listening
    finally:
        await feed.stop()
