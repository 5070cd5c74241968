"""The outbox relay against real Postgres and the embedded broker: one relay active, woken by a
nudge from its own process or by NOTIFY from another, never by a NOTIFY in the writer's commit;
and it never gives up: across a database restart, a broker pause or restart, with a standby
taking over from an active relay that stops or hangs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from goldenhour.dev.stack import EmbeddedStack, die_with_parent
from goldenhour.dev.waiting import eventually
from goldenhour.services.db import OUTBOX_CHANNEL
from goldenhour.services.outbox import OutboxRelay
from tests.integration.broker import broker_cluster, consume_until, fresh_topics, running

# Far longer than any test waits: a row that arrives was relayed because of a nudge.
IDLE_POLL_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def topic(stack: EmbeddedStack) -> str:
    return (await fresh_topics(stack, "relay")).intake


@pytest.fixture
async def own_topic(own_stack: EmbeddedStack) -> str:
    return (await fresh_topics(own_stack, "relay")).intake


def relay_for(
    stack: EmbeddedStack, dsn: str, pool: asyncpg.Pool, idle_poll_s: float = IDLE_POLL_S
) -> OutboxRelay:
    return OutboxRelay(dsn, stack.kafka_bootstrap, pool, idle_poll_s=idle_poll_s)


@contextlib.asynccontextmanager
async def two_relays(
    stack: EmbeddedStack, dsn: str, pool: asyncpg.Pool
) -> AsyncIterator[tuple[OutboxRelay, OutboxRelay, list[asyncio.Task]]]:
    """Two relays running side by side, once one of them holds the lock."""
    first = relay_for(stack, dsn, pool, idle_poll_s=0.5)
    second = relay_for(stack, dsn, pool, idle_poll_s=0.5)
    async with running(first, second) as tasks:
        await eventually(lambda: first.active or second.active, 10, "a relay to take the lock")
        yield first, second, tasks


async def write(pool: asyncpg.Pool, topic: str, key: str, payload: str | None = None) -> None:
    """An outbox row committed the way the API writes it: no NOTIFY in the transaction."""
    await pool.execute(
        "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)",
        topic,
        key,
        (payload or key).encode(),
    )


async def write_when_up(pool: asyncpg.Pool, topic: str, key: str, timeout: float = 30) -> None:
    """Write once the database answers again (after a restart its old connections fail first)."""

    async def written() -> bool:
        try:
            await write(pool, topic, key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise AssertionError(repr(exc)) from exc  # not back yet
        return True

    await eventually(written, timeout, f"the database to take {key!r}", 0.2)


async def relayed(stack: EmbeddedStack, pool: asyncpg.Pool, topic: str, key: str) -> None:
    """Write a row and wait until the broker holds it."""
    await write(pool, topic, key)
    await consume_until(stack, topic, {key})


async def consume(stack: EmbeddedStack, topic: str, n: int) -> list[str]:
    """The payloads of the first `n` records of the topic, in the order they arrive."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        payloads: list[str] = []
        async with asyncio.timeout(15):
            async for record in consumer:
                payloads.append(record.value.decode())
                if len(payloads) == n:
                    return payloads
    finally:
        await consumer.stop()
    return payloads


async def unpublished(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def all_marked(pool: asyncpg.Pool, timeout: float, what: str) -> None:
    """Wait until every outbox row is marked published, as it is once the broker acked it."""

    async def none_left() -> bool:
        return await unpublished(pool) == 0

    await eventually(none_left, timeout, what, every=0.1, retry_errors=True)


# --- waking ------------------------------------------------------------------------------------


async def test_a_nudge_in_the_active_process_relays_at_once(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    relay = relay_for(stack, migrated_db, pool)
    async with running(relay):
        await eventually(lambda: relay.active, 10, "the relay to take the lock")
        await asyncio.sleep(0.2)  # past its first look at the empty outbox
        await write(pool, topic, "child-1")
        relay.nudge()
        assert await consume(stack, topic, 1) == ["child-1"]
        # Marked once the broker acknowledged, just after it delivered.
        await all_marked(pool, 5, "the row to be marked")


async def test_a_nudge_in_another_process_wakes_the_active_relay_by_notify(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    active = relay_for(stack, migrated_db, pool)
    standby = relay_for(stack, migrated_db, pool)
    async with running(active):
        await eventually(lambda: active.active, 10, "the relay to take the lock")
        async with running(standby):
            await asyncio.sleep(0.2)
            assert not standby.active  # one relay holds the lock; the other waits
            # One child's events, so one partition: the order the relay keeps is the order
            # they are read in (across partitions a reader interleaves them as it likes).
            for i in range(3):
                await write(pool, topic, "child-1", f"event-{i}")
            standby.nudge()
            assert await consume(stack, topic, 3) == ["event-0", "event-1", "event-2"]


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
        await eventually(lambda: len(heard) >= 1, 10, "a NOTIFY")
        await asyncio.sleep(0.3)  # any NOTIFY still in flight
        assert 1 <= len(heard) <= 2  # one sent, at most one more for nudges during it
    finally:
        await listener.close()


# --- what it records ---------------------------------------------------------------------------


async def test_each_row_records_where_the_broker_put_it(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    relay = relay_for(stack, migrated_db, pool, idle_poll_s=0.2)
    for i in range(6):
        await write(pool, topic, f"child-{i}")
    async with running(relay):
        records = await consume_until(stack, topic, {f"child-{i}" for i in range(6)})
        await all_marked(pool, 10, "every row to be marked")
    where = {p: (partition, offset) for p, partition, offset in records}
    cluster = await broker_cluster(stack.kafka_bootstrap)
    rows = await pool.fetch(
        "SELECT convert_from(payload, 'UTF8') AS p, kafka_cluster, kafka_partition, kafka_offset,"
        " publish_count FROM outbox"
    )
    assert len(rows) == 6
    for r in rows:
        assert r["kafka_cluster"] == cluster
        assert (r["kafka_partition"], r["kafka_offset"]) == where[r["p"]]
        assert r["publish_count"] == 1


async def test_the_active_relay_beats_by_the_database_clock(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool
) -> None:
    relay = relay_for(stack, migrated_db, pool)
    beat = "SELECT holder, beat_at FROM leader_heartbeats WHERE role = 'outbox_relay'"
    async with running(relay):
        await eventually(
            lambda: pool.fetchrow(beat), 10, "a first beat", every=0.1, retry_errors=True
        )
        first = await pool.fetchrow(beat)
        assert first["holder"] == f"{socket.gethostname()}:{os.getpid()}"

        async def later() -> bool:
            return (await pool.fetchrow(beat))["beat_at"] > first["beat_at"]

        await eventually(later, 10, "a later beat", every=0.1, retry_errors=True)


# --- a standby takes over ----------------------------------------------------------------------


async def test_a_standby_takes_over_when_the_active_relay_stops(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    first = relay_for(stack, migrated_db, pool, idle_poll_s=0.5)
    second = relay_for(stack, migrated_db, pool, idle_poll_s=0.5)
    async with running(first) as (first_task,):
        await eventually(lambda: first.active, 10, "the first relay to take the lock")
        async with running(second):
            await relayed(stack, pool, topic, "before")
            assert not second.active
            first_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first_task
            await eventually(lambda: second.active, 10, "the standby to take over")
            await write(pool, topic, "after")
            await consume_until(stack, topic, {"before", "after"})
            await all_marked(pool, 10, "the row to be marked")


_RELAY_PROCESS = """
import asyncio, sys
from goldenhour.infra.db import create_pool
from goldenhour.services.outbox import OutboxRelay

async def main(dsn, bootstrap):
    pool = await create_pool(dsn)
    await OutboxRelay(dsn, bootstrap, pool, idle_poll_s=0.5).run()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@contextlib.contextmanager
def relay_process(dsn: str, bootstrap: str) -> Iterator[subprocess.Popen]:
    """The relay in a process of its own, which the test can pause; always ended by PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _RELAY_PROCESS, dsn, bootstrap],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGKILL),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


async def test_a_standby_takes_over_from_a_hung_relay_within_seconds(
    stack: EmbeddedStack, migrated_db: str, pool: asyncpg.Pool, topic: str
) -> None:
    holder = "SELECT holder FROM leader_heartbeats WHERE role = 'outbox_relay'"
    with relay_process(migrated_db, stack.kafka_bootstrap) as proc:
        theirs = f"{socket.gethostname()}:{proc.pid}"

        async def they_lead() -> bool:
            return await pool.fetchval(holder) == theirs

        await eventually(
            they_lead, 30, "the relay process to take the lock", every=0.1, retry_errors=True
        )
        standby = relay_for(stack, migrated_db, pool, idle_poll_s=0.5)
        async with running(standby):
            await relayed(stack, pool, topic, "before")
            assert not standby.active
            proc.send_signal(signal.SIGSTOP)  # hung: alive, its connections open, silent
            await write(pool, topic, "while-hung")
            # Its lock session ends on the server after a few idle seconds.
            await eventually(
                lambda: standby.active, 15, "the standby to take over from the hung one"
            )
            await consume_until(stack, topic, {"before", "while-hung"})
            assert await pool.fetchval(holder) == f"{socket.gethostname()}:{os.getpid()}"


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("outage_s", [0, 5], ids=["restart", "5s-outage"])
async def test_relay_and_standby_survive_a_postgres_restart(
    own_stack: EmbeddedStack, own_db: str, own_pool: asyncpg.Pool, own_topic: str, outage_s: int
) -> None:
    async with two_relays(own_stack, own_db, own_pool) as (first, second, tasks):
        await relayed(own_stack, own_pool, own_topic, "before")
        await asyncio.to_thread(own_stack.stop_postgres)
        await asyncio.sleep(outage_s)  # the outage itself, not a wait for anything
        await asyncio.to_thread(own_stack.start_postgres)
        for i in range(3):
            await write_when_up(own_pool, own_topic, f"after-{i}")
        await consume_until(own_stack, own_topic, {"before", "after-0", "after-1", "after-2"})
        await all_marked(own_pool, 15, "the rows to be marked")
        await eventually(lambda: first.active != second.active, 10, "exactly one relay active")
        assert not any(t.done() for t in tasks)  # the standby lives on too


async def test_rows_stay_unmarked_while_the_broker_is_paused_and_relay_after(
    own_stack: EmbeddedStack, own_db: str, own_pool: asyncpg.Pool, own_topic: str
) -> None:
    async with two_relays(own_stack, own_db, own_pool) as (first, second, tasks):
        await relayed(own_stack, own_pool, own_topic, "before")
        await all_marked(own_pool, 10, "the row to be marked")
        own_stack.signal("tansu", signal.SIGSTOP)
        try:
            await write(own_pool, own_topic, "while-paused")
            first.nudge()
            second.nudge()
            # Nothing can acknowledge it while the broker is paused, so nothing may mark it.
            loop = asyncio.get_running_loop()
            resume_at = loop.time() + 15
            while loop.time() < resume_at:
                assert await unpublished(own_pool) == 1
                await asyncio.sleep(0.5)
        finally:
            own_stack.signal("tansu", signal.SIGCONT)
        await write(own_pool, own_topic, "after")
        await consume_until(own_stack, own_topic, {"before", "while-paused", "after"}, 45)
        await all_marked(own_pool, 30, "the rows to be marked")
        assert not any(t.done() for t in tasks)


async def test_relay_publishes_to_a_broker_restarted_with_its_log_lost(
    own_stack: EmbeddedStack, own_db: str, own_pool: asyncpg.Pool, own_topic: str
) -> None:
    relay = relay_for(own_stack, own_db, own_pool, idle_poll_s=0.5)
    async with running(relay):
        await relayed(own_stack, own_pool, own_topic, "before")
        await all_marked(own_pool, 10, "the row to be marked")
        old = await broker_cluster(own_stack.kafka_bootstrap)
        await asyncio.to_thread(own_stack.restart_kafka)
        new = await broker_cluster(own_stack.kafka_bootstrap)
        assert new != old
        await write(own_pool, own_topic, "after")
        await consume_until(own_stack, own_topic, {"after"}, 45)
        await all_marked(own_pool, 15, "the row to be marked")
    clusters = dict(
        await own_pool.fetch(
            "SELECT convert_from(payload, 'UTF8'), kafka_cluster FROM outbox ORDER BY id"
        )
    )
    assert clusters == {"before": old, "after": new}
