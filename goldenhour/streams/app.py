"""The streams worker: a faust-streaming app running the golden-hour clock.

- The `golden_hour_clock` agent consumes intake events (keyed by child_id, so one child's events
  arrive in order), applies each to Postgres in one transaction and announces what it did.
- The `clock_claimers` wake at the next due time and claim due alerts by index with
  `FOR UPDATE SKIP LOCKED`, so every loop of every replica shares the timers and none fires a
  step twice. They survive any failure (logged once per streak, backed off with jitter).
- `health` beats in `worker_readiness` while the worker holds its partitions and, when
  `GOLDENHOUR_HEALTH_PORT` is set, serves /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import faust
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import Counter

from goldenhour.contracts.derived import NotificationRequested
from goldenhour.contracts.shared import SharedAlertPublished
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import create_pool, migrate
from goldenhour.infra.dead_letters import DeadLetter
from goldenhour.infra.faults import patiently
from goldenhour.infra.health import HealthServer
from goldenhour.infra.settings import Settings
from goldenhour.infra.topics import Topics
from goldenhour.streams.clock_store import ClockStore, Outcome
from goldenhour.streams.intake import Incoming, IntakeApplier
from goldenhour.streams.readiness import ClaimStreak, RetryBoard, WorkerReadiness
from goldenhour.streams.watch_store import WatchStore

log = structlog.get_logger(__name__)

ANNOUNCE_FAILED = Counter(
    "goldenhour_streams_announce_failed_total", "Committed outcomes whose Kafka announce failed"
)
CLAIM_ERRORS = Counter("goldenhour_clock_claim_errors_total", "Clock claimer rounds that failed")

# The claimer looks at the index at least this often, so a clock started by another replica
# fires within this bound even without a wake-up.
MAX_SLEEP_S = 0.2
MIN_SLEEP_S = 0.02
# Small batches: each is one transaction holding its alerts' locks until it commits.
CLAIM_BATCH = 50
CLAIMERS = 4
INTAKE_BATCH = 500
INTAKE_BATCH_WAIT_S = 0.002
INTAKE_CHILDREN_AT_ONCE = 8
ANNOUNCE_ATTEMPTS = 3
SEND_TIMEOUT_S = 5.0
MAX_ANNOUNCING = 100
# How long a stopping worker keeps applying the batch it took.
STOP_GRACE_S = 5.0
# Seconds from the database's now to the next due time, by the same clock the claims use.
NEXT_DUE = """
SELECT extract(epoch FROM
    least((SELECT min(next_due_at) FROM alerts WHERE next_due_at IS NOT NULL),
          (SELECT min(due_at) FROM watch_timers WHERE status = 'pending')) - clock_timestamp())
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

    intake, alerts, notifications, shared, dead_topic = (
        raw_topic(t)
        for t in (
            topics.intake,
            topics.alerts,
            topics.notifications,
            topics.shared_alerts,
            topics.dead_letters,
        )
    )
    store = ClockStore(config, settings.ack_links)
    watch = WatchStore(config, store)
    state: dict[str, asyncpg.Pool] = {}
    starting = asyncio.Lock()
    limits = settings.db_limits

    async def pool() -> asyncpg.Pool:
        async with starting:
            if "pool" not in state:
                # Started while the database is down, the worker waits for it.
                await patiently("database", lambda: migrate(dsn))
                state["pool"] = await patiently(
                    "database",
                    lambda: create_pool(
                        dsn,
                        min_size=2,
                        max_size=CLAIMERS + INTAKE_CHILDREN_AT_ONCE + 4,
                        limits=limits,
                    ),
                )
        return state["pool"]

    board = RetryBoard()
    claims = ClaimStreak()
    readiness = WorkerReadiness("streams", pool, bootstrap, board, claims)

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

    async def announce_safely(outcome: Outcome) -> None:
        """Announce, trying again briefly; give up loudly rather than hold the stream, since
        Postgres has every row (the dispatcher finds its messages by its own sweep)."""
        if not outcome.events:
            return
        for attempt in range(1, ANNOUNCE_ATTEMPTS + 1):
            try:
                # faust's send waits for the broker's metadata for up to its request timeout
                # (many minutes) while the broker is away: bound it.
                await asyncio.wait_for(announce(outcome), SEND_TIMEOUT_S)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - bounded retries, then logged
                if attempt == ANNOUNCE_ATTEMPTS:
                    ANNOUNCE_FAILED.inc()
                    log.warning(
                        "announce.failed", events=len(outcome.events), error=repr(exc)[:300]
                    )
                    return
                await asyncio.sleep(delay(attempt, 0.2, 1.0))

    announcing: set[asyncio.Future] = set()

    def announce_later(outcome: Outcome) -> None:
        """Announce without holding the clock: a broker fault must not delay the next claims."""
        if not outcome.events:
            return
        if len(announcing) >= MAX_ANNOUNCING:
            ANNOUNCE_FAILED.inc()  # the broker is away this long: the sweep finds the rows
            return
        task = asyncio.ensure_future(announce_safely(outcome))
        announcing.add(task)
        task.add_done_callback(announcing.discard)

    async def publish_dead(letter: DeadLetter) -> None:
        headers = {
            "consumer": letter.consumer.encode(),
            "reason": letter.reason.encode(),
            "error": letter.error[:1000].encode(),
        }
        await dead_topic.send(key=letter.key, value=letter.raw, headers=headers)

    applier = IntakeApplier(
        pool, watch, config, board, publish_dead, children_at_once=INTAKE_CHILDREN_AT_ONCE
    )

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned: object, **_: object) -> None:
        readiness.on_assigned()

    @app.on_partitions_revoked.connect
    async def _revoked(sender: object, revoked: object, **_: object) -> None:
        readiness.on_revoked()

    servers: list[HealthServer] = []

    @app.on_before_shutdown.connect
    async def _stopping(sender: object, **_: object) -> None:
        await readiness.stop()
        for server in servers:
            await server.stop()

    @app.task
    async def health() -> None:
        if settings.health_port is not None:
            server = HealthServer(
                settings.health_port, readiness.checks(), metrics_token=settings.metrics_token
            )
            try:
                await server.start()
                servers.append(server)
            except Exception as exc:  # noqa: BLE001 - the heartbeat below matters more
                log.error("health.not_serving", port=settings.health_port, error=repr(exc))
        await readiness.heartbeat()

    @app.agent(intake)
    async def golden_hour_clock(stream: faust.StreamT) -> None:
        # Events are taken in small batches and different children's run side by side: the
        # worker mostly waits on Postgres round trips, and only each child's order matters.
        # The batch's offsets are acknowledged after this body, whatever happens in it: so
        # nothing may escape it, and each record is applied or dead-lettered before it ends.
        async for events in stream.take_events(INTAKE_BATCH, within=INTAKE_BATCH_WAIT_S):
            batch = [
                Incoming(
                    raw=e.message.value or b"",
                    key=e.message.key,
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                )
                for e in events
            ]
            work = asyncio.ensure_future(applier.apply_batch(batch))
            try:
                outcome = await asyncio.shield(work)
            except asyncio.CancelledError:
                # Finish what was taken before its offsets are acknowledged, within a bound: an
                # event left unapplied is in Postgres, where the reconciler finds it.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(work, STOP_GRACE_S)
                raise
            except Exception as exc:  # noqa: BLE001 - apply_batch sorts every failure itself
                log.exception("intake.batch_failed", error=repr(exc))
                continue
            await announce_safely(outcome)

    @app.task
    async def clock_claimers() -> None:
        await wake_replanned()
        # Several loops share the due rows through FOR UPDATE SKIP LOCKED: while one waits on
        # Postgres, another fires.
        await asyncio.gather(*(clock_claimer() for _ in range(CLAIMERS)))

    async def wake_replanned() -> None:
        """Once at start, until it succeeds: alerts planned under other policies re-plan now."""
        failures = 0
        while True:
            try:
                db = await pool()
                async with db.acquire() as conn:
                    woken = await store.wake_replanned(conn)
                if woken:
                    log.info("clock.replanned", alerts=woken, policies=store.policies_digest)
                return
            except Exception as exc:  # noqa: BLE001 - the clock must start whatever this does
                failures += 1
                log.warning("clock.replan_failed", error=repr(exc)[:300])
                await asyncio.sleep(delay(failures, 0.2, 5.0))

    async def clock_claimer() -> None:
        while True:
            try:
                sleep = await claim_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the clock must never stop
                if claims.failed(exc):
                    log.error("clock.claim_failed", error=repr(exc)[:500])
                CLAIM_ERRORS.inc()
                sleep = delay(claims.failures, 0.2, 5.0)
            await asyncio.sleep(sleep)

    async def claim_once() -> float:
        """One round of claims; how long to sleep before the next."""
        db = await pool()
        async with db.acquire() as conn:
            # Every due time is compared with the database's clock, read once per round: a
            # worker host whose clock is off fires nothing early or late.
            now = await conn.fetchval("SELECT clock_timestamp()")
            outcome = await watch.claim_due(conn, now, CLAIM_BATCH)
            outcome.extend(await store.claim_due(conn, now, CLAIM_BATCH))
            next_due = await conn.fetchval(NEXT_DUE)
        if claims.succeeded():
            log.info("clock.claim_recovered")
        announce_later(outcome)
        if next_due is None:
            return MAX_SLEEP_S
        # A row due but held by another worker (or a hung one, until its bound frees it) is
        # skipped: without a floor the loop would spin on it.
        floor = 0.0 if outcome.events else MIN_SLEEP_S
        return min(MAX_SLEEP_S, max(floor, float(next_due)))

    return app
