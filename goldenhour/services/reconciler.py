"""The reconciler: Postgres is the record, and this sweep proves every accepted event reached the
clock, re-publishing what the broker lost.

Every second the active reconciler (one among all API replicas, by an advisory lock like the
relay's) walks the intake outbox rows from its cursor. A row whose event was applied
(`processed_events`) or dead-lettered is done, and the cursor moves past the leading done rows.
A published row not applied after a few seconds is compared with the broker: if the broker no
longer holds it (another cluster id, below the log start, at or past the log end, or below the
streams group's committed offset: consumed and skipped), it is marked unpublished, so the relay
publishes it again, in id order. A row still waiting in the log beyond the committed offset is
only lagging and is left alone: re-publishing those would snowball under load. When the broker
cannot be asked, nothing is re-published that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge

from goldenhour.infra import metrics, outbox
from goldenhour.infra.db import DbLimits, audit
from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER
from goldenhour.infra.topics import Topics
from goldenhour.services import db
from goldenhour.services.leadership import Leader, Streak, close_quietly, first_error

log = structlog.get_logger(__name__)

REPUBLISHED = Counter(
    "goldenhour_reconcile_republished_total",
    "Outbox rows the broker lost, marked for the relay to publish again",
    ["reason"],
)
OLDEST = Gauge(
    "goldenhour_reconcile_oldest_unapplied_seconds",
    "Age of the oldest accepted event not yet applied nor dead-lettered (as last swept)",
)
ACTIVE = Gauge("goldenhour_reconciler_active", "1 when this process is the active reconciler")
FAILURES = Counter("goldenhour_reconcile_failures_total", "Failed reconcile rounds (each retried)")

_RECONCILE_LOCK = 0x601DE6
RECONCILE_ROLE = "reconciler"
CURSOR = "intake"
BROKER_TIMEOUT_S = 5.0

# The alert gauges, counted by the active reconciler only (so replicas never add up) through
# the partial index of unresolved alerts, every few seconds, never per scrape.
COUNT_EVERY_S = 5.0
ALERT_COUNTS = """
SELECT kind, risk_level AS risk, local_authority AS authority, count(*)::int AS open,
       count(*) FILTER (WHERE status = 'open' AND next_due_at IS NULL
                          AND first_fired_at IS NOT NULL)::int AS past_last_step
FROM alerts WHERE status <> 'resolved'
GROUP BY kind, risk_level, local_authority
"""


class AlertCounts:
    """Sets the alert gauges from one count, dropping the label sets no longer counted."""

    def __init__(self) -> None:
        self._open: set[tuple[str, str, str]] = set()
        self._past: set[tuple[str, str]] = set()

    def publish(self, rows: Sequence[asyncpg.Record]) -> None:
        opened: dict[tuple[str, str, str], int] = {}
        past: dict[tuple[str, str], int] = {}
        for r in rows:
            opened[(r["kind"], r["risk"], r["authority"])] = r["open"]
            key = (r["kind"], r["authority"])
            past[key] = past.get(key, 0) + r["past_last_step"]
        for labels in self._open - opened.keys():
            metrics.ALERTS_OPEN.remove(*labels)
        for labels in self._past - past.keys():
            metrics.ALERTS_PAST_LAST_STEP.remove(*labels)
        for labels, n in opened.items():
            metrics.ALERTS_OPEN.labels(*labels).set(n)
        for labels, n in past.items():
            metrics.ALERTS_PAST_LAST_STEP.labels(*labels).set(n)
        self._open, self._past = set(opened), set(past)

    def clear(self) -> None:
        """No longer the counter: export nothing rather than a count going stale."""
        self.publish([])


# --- what to do with a window of rows: pure, no I/O -------------------------------------------


@dataclass(frozen=True)
class BrokerView:
    """What the broker holds of the intake topic, read before the rows it judges."""

    cluster_id: str
    log_start: dict[int, int]
    log_end: dict[int, int]
    committed: dict[int, int]  # the streams group's next offset; absent or -1: none yet


@dataclass(frozen=True)
class Row:
    """One intake outbox row as the sweep sees it."""

    id: int
    event_id: uuid.UUID
    done: bool
    age_s: float
    published_age_s: float | None = None
    cluster: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Plan:
    """The cursor's new place (None: it stays), the rows to publish again, and the age of the
    oldest row not yet applied."""

    cursor: int | None
    lost: dict[int, str] = field(default_factory=dict)
    oldest_unapplied_s: float = 0.0


def lost_reason(row: Row, view: BrokerView, settle_s: float) -> str | None:
    """Why the broker no longer holds this published, unapplied row; None while it may still be
    on its way (lagging, or published too recently to judge)."""
    if row.done or row.published_age_s is None:
        return None
    if row.cluster != view.cluster_id:
        return "cluster"  # that log is gone whatever the offsets say
    if row.published_age_s < settle_s:
        return None
    if row.partition is None or row.offset is None or row.partition not in view.log_end:
        return "partition"
    if row.offset < view.log_start.get(row.partition, 0):
        return "truncated"
    if row.offset >= view.log_end[row.partition]:
        return "log_end"
    if row.offset < view.committed.get(row.partition, -1):
        return "skipped"
    return None


def plan(rows: Sequence[Row], view: BrokerView | None, settle_s: float) -> Plan:
    """Judge a window of rows in id order, from just after the cursor."""
    cursor = None
    for row in rows:
        if not row.done:
            break
        cursor = row.id
    unapplied = [r for r in rows if not r.done]
    lost: dict[int, str] = {}
    if view is not None:
        for row in unapplied:
            reason = lost_reason(row, view, settle_s)
            if reason is not None:
                lost[row.id] = reason
    oldest = max((r.age_s for r in unapplied), default=0.0)
    return Plan(cursor, lost, oldest)


# --- the broker's side ---------------------------------------------------------------------------


class BrokerReader:
    """Reads a BrokerView with clients of its own, made again after any failure."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def view(self) -> BrokerView:
        """The intake topic's log bounds and the group's offsets, all of one cluster."""
        try:
            async with asyncio.timeout(BROKER_TIMEOUT_S):
                return await self._read()
        except BaseException:
            await self.close()
            raise

    async def _read(self) -> BrokerView:
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self._admin.start()
        if self._consumer is None:
            # No group: it only asks for offsets and never joins the streams group.
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                fetch_max_wait_ms=10,
                max_partition_fetch_bytes=64 * 1024,
            )
            await self._consumer.start()
        before = (await self._admin.describe_cluster())["cluster_id"]
        topics = await self._admin.describe_topics([self.topic])
        partitions = sorted(
            p["partition"] for t in topics if t["topic"] == self.topic for p in t["partitions"]
        )
        tps = [TopicPartition(self.topic, p) for p in partitions]
        start = await self._consumer.beginning_offsets(tps) if tps else {}
        end = await self._consumer.end_offsets(tps) if tps else {}
        end = await self._high_watermarks(self._consumer, end)
        committed = (
            await self._admin.list_consumer_group_offsets(self.group, partitions=tps) if tps else {}
        )
        after = (await self._admin.describe_cluster())["cluster_id"]
        if before != after:
            raise RuntimeError(f"the cluster changed while it was read ({before} -> {after})")
        return BrokerView(
            cluster_id=str(after),
            log_start={tp.partition: off for tp, off in start.items()},
            log_end={tp.partition: off for tp, off in end.items()},
            committed={tp.partition: meta.offset for tp, meta in committed.items()},
        )

    async def _high_watermarks(
        self, consumer: AIOKafkaConsumer, listed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The end of each log as a fetch reports it. The embedded broker answers the latest
        offset of a log as one past its last batch's first record, short of its true end when
        that batch held several records; a fetch's high watermark is right on every broker."""
        if not listed:
            return listed
        consumer.assign(list(listed))
        try:
            for tp, offset in listed.items():
                consumer.seek(tp, offset)
            marks: dict[TopicPartition, int] = {}
            while len(marks) < len(listed):
                await consumer.getmany(*listed, timeout_ms=50, max_records=1)
                for tp in listed:
                    mark = consumer.highwater(tp)
                    if mark is not None:
                        marks[tp] = mark
        finally:
            consumer.unsubscribe()
        return {tp: max(offset, marks[tp]) for tp, offset in listed.items()}

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        consumer, self._consumer = self._consumer, None
        with contextlib.suppress(Exception):
            if admin is not None:
                await asyncio.wait_for(admin.close(), 5)
        with contextlib.suppress(Exception):
            if consumer is not None:
                await asyncio.wait_for(consumer.stop(), 5)


# --- the database's side -------------------------------------------------------------------------


def _row(r: asyncpg.Record) -> Row:
    return Row(
        id=r["id"],
        event_id=r["event_id"],
        done=r["done"],
        age_s=r["age_s"],
        published_age_s=r["published_age_s"],
        cluster=r["kafka_cluster"],
        partition=r["kafka_partition"],
        offset=r["kafka_offset"],
    )


class Reconciler:
    """Sweeps the intake outbox against the clock's applied events until cancelled."""

    def __init__(
        self,
        dsn: str,
        bootstrap: str,
        pool: asyncpg.Pool,
        topics: Topics,
        limits: DbLimits | None = None,
        nudge: Callable[[], None] | None = None,
        interval_s: float = 1.0,
        settle_s: float = 3.0,
        window: int = 5000,
    ) -> None:
        self.pool = pool
        self.topic = topics.intake
        self.nudge = nudge
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.window = window
        self.leader = Leader(dsn, limits or DbLimits(), _RECONCILE_LOCK, RECONCILE_ROLE)
        self.broker = BrokerReader(bootstrap, topics.intake, f"{topics.prefix}-streams")
        self.active = False
        self.rounds = 0
        self.streak = Streak("reconcile.failed")
        self._broker_streak = Streak("reconcile.broker_unreachable")
        self._busy_since: float | None = None
        self.counts = AlertCounts()
        self._count_streak = Streak("reconcile.count_failed")

    async def run(self) -> None:
        """Wait for leadership, then sweep every interval; after any failure, back off and
        begin again."""
        try:
            while True:
                try:
                    await self._lead()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the sweep must never stop
                    FAILURES.inc()
                    self._step_down()
                    await asyncio.sleep(self.streak.failed(first_error(exc)))
        finally:
            self._step_down()
            await self.broker.close()

    def _step_down(self) -> None:
        self.active = False
        self._busy_since = None
        ACTIVE.set(0)
        self.counts.clear()

    async def _lead(self) -> None:
        conn = await self.leader.acquire(waiting=self.streak.succeeded)
        try:
            self.active = True
            ACTIVE.set(1)
            log.info("reconcile.active", holder=self.leader.holder)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.leader.hold(conn, lambda: self._busy_since))
                group.create_task(self._sweep_loop())
                group.create_task(self._count_loop())
        finally:
            self._step_down()
            await close_quietly(conn)

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._busy_since = loop.time()
            await self.sweep()
            self._busy_since = None
            self.streak.succeeded()
            await asyncio.sleep(self.interval_s)

    async def _count_loop(self) -> None:
        """Count the alerts every few seconds; a failed count keeps the last and tries again."""
        while True:
            try:
                self.counts.publish(await self.pool.fetch(ALERT_COUNTS, timeout=BROKER_TIMEOUT_S))
                self._count_streak.succeeded()
            except Exception as exc:  # the gauges wait; the sweep beside them goes on
                self._count_streak.failed(exc)
            await asyncio.sleep(COUNT_EVERY_S)

    async def sweep(self) -> Plan:
        """One round: read the broker first, then the rows it judges (a row applied after the
        broker was read is seen as done, never as skipped)."""
        view: BrokerView | None
        try:
            view = await self.broker.view()
            self._broker_streak.succeeded()
        except Exception as exc:  # without the broker nothing is re-published
            view = None
            self._broker_streak.failed(exc)
        cursor = await self.pool.fetchval(db.RECONCILE_CURSOR, CURSOR)
        records = await self.pool.fetch(
            db.RECONCILE_WINDOW, cursor or 0, self.window, CONSUMER, self.topic
        )
        decided = plan([_row(r) for r in records], view, self.settle_s)
        OLDEST.set(decided.oldest_unapplied_s)
        reset: list[asyncpg.Record] = []
        async with self.pool.acquire() as conn, conn.transaction():
            if decided.cursor is not None:
                await conn.execute(db.MOVE_RECONCILE_CURSOR, CURSOR, decided.cursor)
            if decided.lost:
                reset = await self._unpublish(conn, decided, view)
        self.rounds += 1
        if reset:
            reasons = Tally(decided.lost[r["id"]] for r in reset)
            for reason, n in reasons.items():
                REPUBLISHED.labels(reason).inc(n)
            log.warning(
                "reconcile.republished",
                count=len(reset),
                reasons=dict(reasons),
                cluster=view.cluster_id if view else None,
                event_id=str(reset[0]["event_id"]),
            )
            if self.nudge is not None:
                self.nudge()
        return decided

    async def _unpublish(
        self, conn: asyncpg.Connection, decided: Plan, view: BrokerView | None
    ) -> list[asyncpg.Record]:
        """Mark the lost rows unpublished, with one audit line for the batch; the rows reset."""
        reset = await outbox.unpublish_lost(conn, list(decided.lost), CONSUMER)
        if reset:
            await audit(
                conn,
                "outbox.republished",
                None,
                None,
                {
                    "count": len(reset),
                    "reasons": dict(Tally(decided.lost[r["id"]] for r in reset)),
                    "cluster": view.cluster_id if view else None,
                    "event_ids": [str(r["event_id"]) for r in reset[:100]],
                },
                actor="system:reconciler",
            )
        return reset
