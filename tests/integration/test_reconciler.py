"""The reconciler: what it decides for each row (pure, no server), and against a real broker and
database that it publishes again what the broker lost, and only that."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.topics import Topics, ensure_topics
from goldenhour.services.outbox import OutboxRelay
from goldenhour.services.reconciler import BrokerView, Reconciler, Row, lost_reason, plan
from goldenhour.streams.handlers import CONSUMER
from tests.integration.broker import broker_cluster, consume_until, fresh_topics, running

# --- pure: what the sweep decides ----------------------------------------------------------------

VIEW = BrokerView(
    cluster_id="c1", log_start={0: 0, 1: 10}, log_end={0: 100, 1: 50}, committed={0: 40, 1: -1}
)


def row(
    id: int = 1,
    done: bool = False,
    published_age_s: float | None = 10.0,
    cluster: str | None = "c1",
    partition: int | None = 0,
    offset: int | None = 60,
    age_s: float = 12.0,
) -> Row:
    return Row(id, uuid.uuid4(), done, age_s, published_age_s, cluster, partition, offset)


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (row(), None),  # waiting in the log beyond the committed offset: lagging
        (row(offset=40), None),  # the next record the group will read
        (row(offset=39), "skipped"),  # the group committed past it, yet it was never applied
        (row(cluster="c0"), "cluster"),  # another cluster's log is gone
        (row(cluster=None), "cluster"),  # published before clusters were recorded
        (row(cluster="c0", published_age_s=0.1), "cluster"),  # no need to wait for that
        (row(offset=100), "log_end"),  # the log is shorter than where it was put
        (row(partition=1, offset=5), "truncated"),  # below the log start
        (row(partition=1, offset=20), None),  # no committed offset there: waiting
        (row(partition=7), "partition"),  # the topic has no such partition now
        (row(offset=39, published_age_s=1.0), None),  # too recent to judge by offsets
        (row(offset=39, done=True), None),  # applied
        (row(published_age_s=None, cluster=None, partition=None, offset=None), None),  # unsent
    ],
)
def test_lost_reason(r: Row, reason: str | None) -> None:
    assert lost_reason(r, VIEW, settle_s=3.0) == reason


def test_the_cursor_moves_past_the_leading_done_rows_only() -> None:
    rows = [row(1, done=True), row(2, done=True), row(3), row(4, done=True), row(5, offset=10)]
    decided = plan(rows, VIEW, settle_s=3.0)
    assert decided.cursor == 2
    assert decided.lost == {5: "skipped"}


def test_without_the_broker_nothing_is_lost_but_the_cursor_still_moves() -> None:
    rows = [row(1, done=True), row(2, cluster="gone", age_s=30.0), row(3, age_s=4.0)]
    decided = plan(rows, None, settle_s=3.0)
    assert (decided.cursor, decided.lost, decided.oldest_unapplied_s) == (1, {}, 30.0)


def test_nothing_to_do_when_everything_is_applied() -> None:
    decided = plan([row(1, done=True), row(2, done=True)], VIEW, settle_s=3.0)
    assert (decided.cursor, decided.lost, decided.oldest_unapplied_s) == (2, {}, 0.0)
    assert plan([], VIEW, settle_s=3.0).cursor is None


# --- against the broker and database -------------------------------------------------------------


@pytest.fixture
async def db(own_db: str, own_pool: asyncpg.Pool) -> tuple[str, asyncpg.Pool]:
    """The test's own database and a pool on it, as `pipeline` takes them."""
    return own_db, own_pool


@pytest.fixture
async def topics(own_stack: EmbeddedStack) -> Topics:
    return await fresh_topics(own_stack, "rec")


@contextlib.asynccontextmanager
async def pipeline(
    stack: EmbeddedStack, dsn: str, pool: asyncpg.Pool, topics: Topics, settle_s: float = 1.0
) -> AsyncIterator[tuple[OutboxRelay, Reconciler]]:
    """The relay and the reconciler as an API process runs them."""
    relay = OutboxRelay(
        dsn,
        stack.kafka_bootstrap,
        pool,
        idle_poll_s=0.5,
        on_new_cluster=lambda: ensure_topics(stack.kafka_bootstrap, topics),
    )
    reconciler = Reconciler(
        dsn, stack.kafka_bootstrap, pool, topics, nudge=relay.nudge, settle_s=settle_s
    )
    async with running(relay, reconciler):
        yield relay, reconciler


async def accept(pool: asyncpg.Pool, topics: Topics, child: str, payload: str) -> uuid.UUID:
    """An intake outbox row as the API writes it."""
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO outbox (topic, key, payload, event_id) VALUES ($1, $2, $3, $4)",
        topics.intake,
        child,
        payload.encode(),
        event_id,
    )
    return event_id


async def apply(pool: asyncpg.Pool, event_id: uuid.UUID) -> None:
    """What the clock records when it applied an event."""
    await pool.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)", CONSUMER, event_id
    )


async def published(pool: asyncpg.Pool, event_id: uuid.UUID, count: int = 1) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT published_at IS NOT NULL AND publish_count >= $2 FROM outbox"
            " WHERE event_id = $1",
            event_id,
            count,
        )
    )


async def until_published(
    pool: asyncpg.Pool, event_id: uuid.UUID, timeout: float, what: str, count: int = 1
) -> None:
    """Wait until the event's row is marked published, `count` times at least."""
    await eventually(
        lambda: published(pool, event_id, count), timeout, what, every=0.1, retry_errors=True
    )


async def until_cursor_at(pool: asyncpg.Pool, outbox_id: int, what: str) -> None:
    """Wait until the sweep's cursor stands at the outbox row `outbox_id`."""
    await eventually(
        lambda: pool.fetchval("SELECT outbox_id = $1 FROM reconcile_cursor", outbox_id),
        15,
        what,
        every=0.1,
        retry_errors=True,
    )


async def outbox_row(pool: asyncpg.Pool, event_id: uuid.UUID) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM outbox WHERE event_id = $1", event_id)


async def rounds_pass(reconciler: Reconciler, n: int, timeout: float = 60) -> None:
    start = reconciler.rounds
    await eventually(lambda: reconciler.rounds >= start + n, timeout, f"{n} reconcile rounds")


async def commit(stack: EmbeddedStack, topics: Topics, partition: int, offset: int) -> None:
    """The streams group's committed offset, as its worker would leave it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"{topics.prefix}-streams",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topics.intake, partition)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_an_event_the_broker_lost_is_published_again_and_reaches_the_new_log(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    async with pipeline(own_stack, dsn, pool, topics) as (_, reconciler):
        lost = await accept(pool, topics, "child-1", "lost")
        await until_published(pool, lost, 15, "the event to be published")
        old = (await outbox_row(pool, lost))["kafka_cluster"]
        await asyncio.to_thread(own_stack.restart_kafka)  # its log is gone, unconsumed
        await until_published(pool, lost, 20, "a second publish", count=2)
        await consume_until(own_stack, topics.intake, {"lost"}, 30)
        again = await outbox_row(pool, lost)
        assert again["kafka_cluster"] == await broker_cluster(own_stack.kafka_bootstrap) != old
        assert again["publish_count"] == 2
        # Applied now: the sweep moves past it and never sends it a third time.
        await apply(pool, lost)
        await until_cursor_at(pool, again["id"], "the cursor past the applied event")
        await rounds_pass(reconciler, 3)
        assert (await outbox_row(pool, lost))["publish_count"] == 2
    audit = await pool.fetch(
        "SELECT actor, detail FROM audit_log WHERE action = 'outbox.republished'"
    )
    assert len(audit) == 1
    assert audit[0]["actor"] == "system:reconciler"
    assert audit[0]["detail"]["event_ids"] == [str(lost)]
    assert audit[0]["detail"]["reasons"] == {"cluster": 1}


async def test_lagging_events_still_in_the_log_are_left_alone(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    # Written before the relay starts, so they go in one batch: the broker's offsets of a
    # batch's later records are judged right too.
    waiting = [await accept(pool, topics, "child-1", f"waiting-{i}") for i in range(3)]
    async with pipeline(own_stack, dsn, pool, topics, settle_s=0.5) as (_, reconciler):
        await until_published(pool, waiting[-1], 15, "the events to be published")
        before = [await outbox_row(pool, e) for e in waiting]
        assert len({r["kafka_partition"] for r in before}) == 1
        # The group has read up to them (not past them): the worker is slow, not skipping.
        await commit(own_stack, topics, before[0]["kafka_partition"], before[0]["kafka_offset"])
        await eventually(lambda: reconciler.active, 15, "the reconciler to lead")
        await asyncio.sleep(0.6)  # older than the settle time
        await rounds_pass(reconciler, 5)
        after = [await outbox_row(pool, e) for e in waiting]
        assert [r["publish_count"] for r in after] == [1, 1, 1]
        assert [r["published_at"] for r in after] == [r["published_at"] for r in before]


async def test_an_event_consumed_but_never_applied_is_published_again(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    async with pipeline(own_stack, dsn, pool, topics, settle_s=0.5) as (_, reconciler):
        applied = await accept(pool, topics, "child-1", "applied")
        skipped = await accept(pool, topics, "child-1", "skipped")
        await until_published(pool, skipped, 15, "the events to be published")
        await apply(pool, applied)
        where = await outbox_row(pool, skipped)
        # The group moved past both, as a worker that lost the record in a crash would.
        await commit(own_stack, topics, where["kafka_partition"], where["kafka_offset"] + 1)
        await until_published(pool, skipped, 20, "a second publish", count=2)
        await rounds_pass(reconciler, 2)
        assert (await outbox_row(pool, applied))["publish_count"] == 1
        cursor = await pool.fetchval("SELECT outbox_id FROM reconcile_cursor")
        assert cursor == (await outbox_row(pool, applied))["id"]


async def test_dead_lettered_and_applied_events_move_the_cursor(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    async with pipeline(own_stack, dsn, pool, topics) as _:
        first = await accept(pool, topics, "child-1", "first")
        dead = await accept(pool, topics, "child-2", "dead")
        await apply(pool, first)
        await pool.execute(
            "INSERT INTO dead_letters (consumer, topic, raw, event_id, reason, error)"
            " VALUES ($1, $2, 'x', $3, 'handler', 'raised every time')",
            CONSUMER,
            topics.intake,
            dead,
        )
        last = (await outbox_row(pool, dead))["id"]
        await until_cursor_at(pool, last, "the cursor past both")


async def test_nothing_is_published_again_while_the_broker_cannot_be_asked(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    async with pipeline(own_stack, dsn, pool, topics) as (_, reconciler):
        event = await accept(pool, topics, "child-1", "event")
        await until_published(pool, event, 15, "the event to be published")
        await eventually(lambda: reconciler.active, 15, "the reconciler to lead")
        own_stack.signal("tansu", signal.SIGSTOP)
        try:
            # As if it had gone to a log since lost: only the broker can say so, and it is away.
            await pool.execute(
                "UPDATE outbox SET kafka_cluster = 'gone' WHERE event_id = $1", event
            )
            await rounds_pass(reconciler, 2)
            assert await published(pool, event)
            assert (await outbox_row(pool, event))["kafka_cluster"] == "gone"
        finally:
            own_stack.signal("tansu", signal.SIGCONT)
        await until_published(pool, event, 30, "the second publish", count=2)


async def test_one_reconciler_is_active_among_replicas(
    own_stack: EmbeddedStack, db: tuple[str, asyncpg.Pool], topics: Topics
) -> None:
    dsn, pool = db
    async with (
        pipeline(own_stack, dsn, pool, topics) as (_, first),
        pipeline(own_stack, dsn, pool, topics) as (_, second),
    ):
        await eventually(lambda: first.active or second.active, 15, "a reconciler to lead")
        await rounds_pass(first if first.active else second, 3)
        assert first.active != second.active
