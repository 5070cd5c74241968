"""The outbox relay against real Postgres and the embedded broker: one relay active, woken by a
nudge from its own process or by NOTIFY from another, never by a NOTIFY in the writer's commit."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from infra.db import create_pool
from infra.stack import EmbeddedStack
from infra.topics import Topics, ensure_topics
from services.intake import OUTBOX_CHANNEL
from services.outbox import OutboxRelay, kafka_producer
from tests.e2e.conftest import until

# Far longer than any test waits: a row that arrives was relayed because of a nudge.
IDLE_POLL_S = 60.0


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(migrated_db)
    yield p
    await p.close()


@pytest.fixture
async def topic(stack: EmbeddedStack) -> str:
    topics = Topics(f"relay-{uuid.uuid4().hex[:8]}")
    await ensure_topics(stack.kafka_bootstrap, topics)
    return topics.intake


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    await relay.producer.start()
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.producer.stop()


def relay_for(stack: EmbeddedStack, dsn: str, pool: asyncpg.Pool) -> OutboxRelay:
    return OutboxRelay(dsn, kafka_producer(stack.kafka_bootstrap), pool, IDLE_POLL_S)


async def write(pool: asyncpg.Pool, topic: str, key: str) -> None:
    """An outbox row committed the way the API writes it: no NOTIFY in the transaction."""
    await pool.execute(
        "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)", topic, key, key.encode()
    )


async def consume(stack: EmbeddedStack, topic: str, n: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        keys: list[str] = []
        async with asyncio.timeout(15):
            async for record in consumer:
                keys.append(record.key.decode())
                if len(keys) == n:
                    return keys
    finally:
        await consumer.stop()
    return keys


async def test_a_nudge_in_the_active_process_relays_at_once(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    relay = relay_for(stack, migrated_db, pool)
    async with running(relay):
        await until(lambda: relay.active, 10, "the relay to take the lock")
        await asyncio.sleep(0.2)  # past its first look at the empty outbox
        await write(pool, topic, "child-1")
        relay.nudge()
        assert await consume(stack, topic, 1) == ["child-1"]
        unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        for _ in range(100):  # marked once the broker acknowledged, just after it delivered
            if await pool.fetchval(unpublished) == 0:
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval(unpublished) == 0


async def test_a_nudge_in_another_process_wakes_the_active_relay_by_notify(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    active = relay_for(stack, migrated_db, pool)
    standby = relay_for(stack, migrated_db, pool)
    async with running(active), running(standby):
        await until(lambda: active.active, 10, "the relay to take the lock")
        await asyncio.sleep(0.2)
        assert not standby.active  # one relay holds the lock; the other waits
        for i in range(3):
            await write(pool, topic, f"child-{i}")
        standby.nudge()
        assert await consume(stack, topic, 3) == ["child-0", "child-1", "child-2"]


async def test_nudges_are_coalesced_into_few_notifies(
    migrated_db: str, pool: asyncpg.Pool, stack: EmbeddedStack
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(migrated_db)
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.append(args[2]))
    try:
        standby = relay_for(stack, migrated_db, pool)  # never started: not the active relay
        for _ in range(200):
            standby.nudge()
        await until(lambda: len(heard) >= 1, 10, "a NOTIFY")
        await asyncio.sleep(0.3)  # any NOTIFY still in flight
        assert 1 <= len(heard) <= 2  # one sent, at most one more for nudges during it
    finally:
        await listener.close()
