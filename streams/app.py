"""The streams worker: a faust-streaming app running the golden-hour clock.

- The `golden_hour_clock` agent consumes intake events (keyed by child_id, so one child's events
  arrive in order), applies each to Postgres in one transaction and announces what it did.
- The `clock_claimers` wake at the next due time and claim due alerts by index with
  `FOR UPDATE SKIP LOCKED`, so every loop of every replica shares the timers and none fires a
  step twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import faust
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka

from contracts.derived import NotificationRequested
from contracts.events import IntakeRecord
from contracts.shared import SharedAlertPublished
from infra.db import create_pool, mark_ready, migrate
from infra.settings import Settings
from infra.topics import Topics
from streams.clock_store import ClockStore, Outcome
from streams.handlers import handle_intake
from streams.watch_store import WatchStore

log = structlog.get_logger(__name__)

# The claimer looks at the index at least this often, so a clock started by another replica
# fires within this bound even without a wake-up.
MAX_SLEEP_S = 0.2
# Small batches: each is one transaction holding its alerts' locks until it commits.
CLAIM_BATCH = 50
CLAIMERS = 4
INTAKE_ATTEMPTS = 3
INTAKE_BATCH = 500
INTAKE_BATCH_WAIT_S = 0.002
INTAKE_CHILDREN_AT_ONCE = 8
NEXT_DUE = """
SELECT least((SELECT min(next_due_at) FROM alerts WHERE next_due_at IS NOT NULL),
             (SELECT min(due_at) FROM watch_timers WHERE status = 'pending'))
"""


def _shorten_fetch_wait(max_wait_ms: int) -> None:
    """faust hard-codes a 1.5 s fetch wait for its consumer; the embedded broker holds a fetch
    for all of it, which would put up to 1.5 s on every hop. Set it on the consumer faust makes."""
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_goldenhour", False):
        return

    def create_with_wait(self, transport):  # type: ignore[no-untyped-def]
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read by aiokafka's fetcher at start
        return consumer

    create_with_wait._goldenhour = True  # type: ignore[attr-defined]
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_with_wait


def build_app(settings: Settings, datadir: Path) -> faust.App:
    """The faust app for one worker process."""
    bootstrap, dsn = settings.require_servers()
    config = settings.config
    topics = Topics(settings.topic_prefix)
    _shorten_fetch_wait(settings.fetch_max_wait_ms)
    session = settings.kafka_session_timeout_s
    app = faust.App(
        f"{settings.topic_prefix}-streams",
        broker=";".join(f"kafka://{host}" for host in bootstrap.split(",")),
        store="memory://",
        datadir=datadir,
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_partitions=4,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A new group's first assignment waits half the session timeout; keep it short.
        broker_session_timeout=session,
        broker_heartbeat_interval=min(1.0, session / 3),
        broker_rebalance_timeout=session,
        topic_disable_leader=True,  # no task here runs on the leader only
        stream_wait_empty=False,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    intake, alerts, notifications, shared = (
        raw_topic(t)
        for t in (topics.intake, topics.alerts, topics.notifications, topics.shared_alerts)
    )
    store = ClockStore(config, settings.ack_links)
    watch = WatchStore(config, store)
    state: dict[str, asyncpg.Pool] = {}
    starting = asyncio.Lock()

    async def pool() -> asyncpg.Pool:
        async with starting:
            if "pool" not in state:
                await migrate(dsn)
                state["pool"] = await create_pool(
                    dsn, min_size=2, max_size=CLAIMERS + INTAKE_CHILDREN_AT_ONCE + 4
                )
        return state["pool"]

    async def announce(outcome: Outcome) -> None:
        """Tell Kafka what was committed; the dispatcher's sweep covers a send lost here."""
        for event in outcome.events:
            topic = (
                notifications
                if isinstance(event, NotificationRequested)
                else shared
                if isinstance(event, SharedAlertPublished)
                else alerts
            )
            await topic.send(key=event.child_id.encode(), value=event.model_dump_json().encode())

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned: object, **_: object) -> None:
        await mark_ready(await pool(), "streams")

    @app.agent(intake)
    async def golden_hour_clock(stream: faust.StreamT) -> None:
        # Events are taken in small batches and different children's run side by side: the
        # worker mostly waits on Postgres round trips, and only each child's order matters.
        # The batch's offsets are acknowledged after this body, so a crash replays it (each
        # event is idempotent on its id).
        async for values in stream.take(INTAKE_BATCH, within=INTAKE_BATCH_WAIT_S):
            by_child: dict[str, list[IntakeRecord]] = {}
            for value in values:
                record = IntakeRecord.model_validate_json(value)
                by_child.setdefault(record.event.child_id, []).append(record)
            work = asyncio.ensure_future(
                asyncio.gather(*(apply_in_order(records) for records in by_child.values()))
            )
            try:
                outcomes = await asyncio.shield(work)
            except asyncio.CancelledError:
                await work  # finish what was taken before its offsets are acknowledged
                raise
            for outcome in outcomes:
                await announce(outcome)

    side_by_side = asyncio.Semaphore(INTAKE_CHILDREN_AT_ONCE)

    async def apply_in_order(records: list[IntakeRecord]) -> Outcome:
        """One child's events of a batch, in their order."""
        outcome = Outcome()
        async with side_by_side:
            for record in records:
                outcome.extend(await apply_with_retries(record))
        return outcome

    async def apply_with_retries(record: IntakeRecord) -> Outcome:
        """A database hiccup is retried; an event that still fails is set aside loudly (it is
        kept in the events table, to replay once mended) rather than stall every other child
        on its partition."""
        for attempt in range(1, INTAKE_ATTEMPTS + 1):
            try:
                return await handle_intake(await pool(), watch, record, datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - retried, then set aside and audited
                log.error(
                    "intake.failed",
                    event_id=str(record.event.event_id),
                    child_id=record.event.child_id,
                    attempt=attempt,
                    error=repr(exc),
                )
                last = exc
                await asyncio.sleep(0.5 * attempt)
        await (await pool()).execute(
            "INSERT INTO audit_log (actor, action, child_id, detail) VALUES ($1, $2, $3, $4)",
            "system:streams",
            "intake.set_aside",
            record.event.child_id,
            {"event_id": str(record.event.event_id), "error": repr(last)[:500]},
        )
        return Outcome()

    @app.task
    async def clock_claimers() -> None:
        # Several loops share the due rows through FOR UPDATE SKIP LOCKED: while one waits on
        # Postgres, another fires.
        await asyncio.gather(*(clock_claimer() for _ in range(CLAIMERS)))

    async def clock_claimer() -> None:
        db = await pool()
        while True:
            now = datetime.now(UTC)
            try:
                async with db.acquire() as conn:
                    outcome = await watch.claim_due(conn, now, CLAIM_BATCH)
                    outcome.extend(await store.claim_due(conn, now, CLAIM_BATCH))
                    next_due = await conn.fetchval(NEXT_DUE)
            except Exception as exc:  # noqa: BLE001 - the clock must never stop
                log.error("clock.claim_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            await announce(outcome)
            sleep = MAX_SLEEP_S
            if next_due is not None:
                sleep = min(MAX_SLEEP_S, max(0.0, (next_due - datetime.now(UTC)).total_seconds()))
            await asyncio.sleep(sleep)

    return app
