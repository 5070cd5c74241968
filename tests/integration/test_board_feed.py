"""The board's live feed against real Postgres: it listens only while a board is open."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from goldenhour.dev.waiting import eventually
from goldenhour.services.console.board import BoardFeed
from tests.integration.rows import open_alert

LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
)


async def new_alert(pool: asyncpg.Pool) -> uuid.UUID:
    """An open alert of a child of its own, with a code of its own."""
    child = f"LBH-{uuid.uuid4().hex[:8]}"
    return await open_alert(pool, child, ack_code=str(uuid.uuid4().int)[:4])


async def test_listens_only_while_a_board_is_open(migrated_db: str, pool: asyncpg.Pool) -> None:
    feed = BoardFeed(migrated_db, linger_s=0.3)
    await feed.start()
    try:
        await asyncio.sleep(0.5)
        assert not feed.listening and await pool.fetchval(LISTENERS) == 0
        await new_alert(pool)  # nobody watches: announced to no one, and nothing breaks

        with feed.subscribe() as queue:
            # Once listening, the board is told to reload: it may have missed changes.
            assert await asyncio.wait_for(queue.get(), 5) == "*"
            assert feed.listening and await pool.fetchval(LISTENERS) == 1
            alert_id = await new_alert(pool)
            assert await asyncio.wait_for(queue.get(), 5) == str(alert_id)

        # The last board closed: the listening connection goes after the linger.
        async def closed() -> bool:
            return not feed.listening and await pool.fetchval(LISTENERS) == 0

        await eventually(closed, 5.0, "the listening connection closed after the linger")

        with feed.subscribe() as queue:  # and comes back for the next board
            assert await asyncio.wait_for(queue.get(), 5) == "*"
            assert feed.listening
    finally:
        await feed.stop()
