"""The streams worker: a faust-streaming app running the golden-hour clock, wired here.

- `intake_clock`: the `golden_hour_clock` agent applies each intake event to Postgres and
  announces what it did.
- `clock_claimers`: the loops claiming due watch timers and alerts, shared by every replica.
- `rota_watch`: briefs whoever comes on call at a rota's handover; counts the gaps ahead.
- `health` beats in `worker_readiness` while the worker holds its partitions and, when
  `GOLDENHOUR_HEALTH_PORT` is set, serves /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import faust
import structlog

from goldenhour.infra.db import DbLimits, create_pool, migrate_or_wait
from goldenhour.infra.faults import patiently
from goldenhour.infra.health import HealthServer
from goldenhour.infra.settings import Settings
from goldenhour.streams.announcer import Announcer
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_claimers import CLAIMERS, ClockClaimers, add_clock_claimers
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.faust_consumer import adjust_consumer
from goldenhour.streams.faust_producer import adjust_producer
from goldenhour.streams.handovers import RotaWatch, add_rota_watch
from goldenhour.streams.intake import IntakeApplier
from goldenhour.streams.intake_clock import add_intake_clock
from goldenhour.streams.readiness import ClaimStreak, RetryBoard, WorkerReadiness

log = structlog.get_logger(__name__)

INTAKE_CHILDREN_AT_ONCE = 8


class LazyPool:
    """The worker's database pool, made on first use: started while the database is down, the
    worker waits for it."""

    def __init__(self, dsn: str, limits: DbLimits, migrate: str = "auto") -> None:
        self.dsn = dsn
        self.limits = limits
        self.migrate = migrate
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()

    async def __call__(self) -> asyncpg.Pool:
        async with self._starting:
            if self._pool is None:
                await patiently(
                    "database", lambda: migrate_or_wait(self.dsn, self.migrate, self.limits)
                )
                self._pool = await patiently(
                    "database",
                    lambda: create_pool(
                        self.dsn,
                        min_size=2,
                        max_size=CLAIMERS + INTAKE_CHILDREN_AT_ONCE + 4,
                        limits=self.limits,
                    ),
                )
        return self._pool


def build_app(settings: Settings, datadir: Path, idempotent: bool = False) -> faust.App:
    """The faust app for one worker process; `idempotent` when the broker serves the
    idempotent producer."""
    bootstrap, dsn = settings.require_servers()
    config = settings.config
    topics = settings.topics
    adjust_consumer(settings.fetch_max_wait_ms)
    adjust_producer(idempotent)
    session = settings.kafka_session_timeout_s
    app = faust.App(
        f"{settings.topic_prefix}-streams",
        broker=";".join(f"kafka://{host}" for host in bootstrap.split(",")),
        store="memory://",
        datadir=datadir,
        processing_guarantee="at_least_once",
        web_enabled=False,
        # Topics faust declares itself get the same layout as those `goldenhour topics` makes.
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
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

    intake = raw_topic(topics.intake)
    announcer = Announcer(
        alerts=raw_topic(topics.alerts),
        notifications=raw_topic(topics.notifications),
        shared=raw_topic(topics.shared_alerts),
        dead_letters=raw_topic(topics.dead_letters),
    )
    clock = ClockStore(config, settings.ack_links)
    watch = ChildWatch(config)
    pool = LazyPool(dsn, settings.db_limits, settings.migrate)
    board = RetryBoard()
    claims = ClaimStreak()
    readiness = WorkerReadiness("streams", pool, bootstrap, board, claims)
    applier = IntakeApplier(
        pool,
        watch,
        clock,
        config,
        board,
        announcer.publish_dead,
        children_at_once=INTAKE_CHILDREN_AT_ONCE,
    )
    _add_health(app, settings, readiness)
    add_intake_clock(app, intake, applier, announcer)
    add_clock_claimers(app, ClockClaimers(pool, watch, clock, claims, announcer))
    add_rota_watch(app, RotaWatch(config, pool, settings.rota_watch_s))
    return app


def _add_health(app: faust.App, settings: Settings, readiness: WorkerReadiness) -> None:
    """The readiness heartbeat, and the health server when a port is set."""

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
                settings.health_port,
                readiness.checks(),
                host=settings.health_host,
                metrics_tokens=settings.metrics_tokens,
            )
            try:
                await server.start()
                servers.append(server)
            except Exception as exc:  # the heartbeat below matters more
                log.error("health.not_serving", port=settings.health_port, error=repr(exc))
        await readiness.heartbeat()
