"""The outbox relay: publishes committed outbox rows to Kafka, in order, and marks them published.

One relay is active at a time (a Postgres advisory lock held on a dedicated connection), so a
child's events reach Kafka in the order they were accepted even with many API replicas; the
others wait and take over within seconds if the active one dies or hangs. Rows are marked
published only after the broker acknowledged them, with where the broker put them (cluster,
partition, offset), so the reconciler can tell a row still waiting in the log from one the broker
lost. A crash in between re-publishes, and consumers are idempotent on event_id.

The relay never gives up: any failure is logged once per streak, backed off with jitter and
retried, in the active relay and in every standby alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import RecordMetadata
from prometheus_client import Counter, Gauge

from goldenhour.infra import outbox, tracing
from goldenhour.infra.db import DbLimits
from goldenhour.infra.metrics import OUTBOX_LAG
from goldenhour.infra.producers import producer_options
from goldenhour.services import db
from goldenhour.services.db import NOTIFY_OUTBOX, OUTBOX_CHANNEL
from goldenhour.services.leadership import (
    LOCK_IDLE_S,
    Leader,
    Streak,
    close_quietly,
    first_error,
)

log = structlog.get_logger(__name__)

RELAYED = Counter("goldenhour_outbox_relayed_total", "Outbox rows published to Kafka")
LEADER = Gauge("goldenhour_outbox_relay_active", "1 when this process is the active relay")
LAST_PUBLISH = Gauge(
    "goldenhour_outbox_last_publish_timestamp_seconds",
    "Unix time of this process's last batch acknowledged by the broker",
)
WAITING = Gauge(
    "goldenhour_outbox_rows_waiting", "Unpublished outbox rows, as the active relay last counted"
)
FAILURES = Counter(
    "goldenhour_outbox_relay_failures_total", "Failures of the relay (each retried)", ["stage"]
)

_RELAY_LOCK = 0x601DE5
RELAY_ROLE = "outbox_relay"
BATCH = 500

# Rows waiting and the age of the oldest, by the unpublished partial index, on each beat.
COUNT_WAITING = """
SELECT count(*) AS waiting,
       coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox
                WHERE published_at IS NULL ORDER BY id LIMIT 1)), 0)::float8 AS lag_s
FROM outbox WHERE published_at IS NULL
"""

# Every wait on the broker is bounded; past it the producer is made again.
SEND_TIMEOUT_S = 10.0
PRODUCER_START_S = 10.0


def kafka_producer(bootstrap: str, options: Mapping[str, Any]) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica, idempotent when the broker supports it
    (`infra.producers`); order per key holds because one request per partition is in flight."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **options,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        request_timeout_ms=int(SEND_TIMEOUT_S * 1000),
    )


async def cluster_id(client: AIOKafkaClient) -> str:
    """The id of the cluster this client talks to; a broker that lost its log answers a new one."""
    node = client.get_random_node()
    if node is None:
        raise KafkaConnectionError("no broker known")
    response = await client.send(node, MetadataRequest([], allow_auto_topic_creation=False))
    found = getattr(response, "cluster_id", None)
    if not found:
        raise KafkaError("the broker does not say its cluster id (Metadata v2+ needed)")
    return str(found)


class PublishFailed(Exception):
    """The broker did not acknowledge a batch in time; its producer is made again."""


class OutboxRelay:
    """Relays the outbox table to Kafka until cancelled."""

    def __init__(
        self,
        dsn: str,
        bootstrap: str,
        pool: asyncpg.Pool,
        limits: DbLimits | None = None,
        idle_poll_s: float = 1.0,
        on_new_cluster: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.pool = pool
        self.idle_poll_s = idle_poll_s
        self.on_new_cluster = on_new_cluster
        self.leader = Leader(dsn, limits or DbLimits(), _RELAY_LOCK, RELAY_ROLE)
        self.producer: AIOKafkaProducer | None = None
        self.active = False
        self.streak = Streak("outbox.relay_failed")
        self._wake = asyncio.Event()
        self._notify_wanted = False
        self._notifier: asyncio.Task | None = None
        self._busy_since: float | None = None
        self._last_cluster: str | None = None

    def nudge(self) -> None:
        """Outbox rows were committed: wake the relay, in this process or by NOTIFY in another.

        Not a NOTIFY inside each writer's transaction: Postgres serialises the commits of all
        notifying transactions. A nudge lost in a crash costs at most one idle poll."""
        if self.active:
            self._wake.set()
            return
        self._notify_wanted = True
        if self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        # One NOTIFY at a time, covering every commit nudged before it went out.
        while self._notify_wanted:
            self._notify_wanted = False
            try:
                await self.pool.execute(NOTIFY_OUTBOX, timeout=5)
            except Exception as exc:  # a lost nudge costs one idle poll
                log.warning("outbox.notify_failed", error=repr(exc))
                return

    async def broker_cluster_id(self) -> str:
        """The cluster id as this relay's producer sees it (raises while it has none)."""
        if self.producer is None:
            raise KafkaConnectionError("no producer connected (starting, or after a failure)")
        return await cluster_id(self.producer.client)

    async def run(self) -> None:
        """Wait for leadership, then relay; after any failure, back off and begin again."""
        try:
            while True:
                try:
                    await self._ensure_producer()
                    await self._lead()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the relay must never stop
                    error = first_error(exc)
                    stage = "publish" if isinstance(error, PublishFailed) else "database"
                    FAILURES.labels(stage).inc()
                    self._step_down()
                    if stage == "publish":
                        await self._drop_producer()
                    await asyncio.sleep(self.streak.failed(error, stage=stage))
        finally:
            self._step_down()
            await self._drop_producer()

    async def _ensure_producer(self) -> None:
        if self.producer is not None:
            return
        try:
            options = await producer_options(self.bootstrap)
        except Exception as exc:
            raise PublishFailed(f"broker did not answer ApiVersions: {exc!r}") from exc
        producer = kafka_producer(self.bootstrap, options)
        try:
            await asyncio.wait_for(producer.start(), PRODUCER_START_S)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            if isinstance(exc, Exception):
                raise PublishFailed(f"producer did not start: {exc!r}") from exc
            raise
        self.producer = producer

    async def _drop_producer(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    def _step_down(self) -> None:
        if self.active:
            log.info("outbox.relay_inactive")
        self.active = False
        self._busy_since = None
        LEADER.set(0)
        # Only the active relay counts: a standby's zeros never win a `max` across replicas.
        WAITING.set(0)
        OUTBOX_LAG.set(0)

    async def _lead(self) -> None:
        conn = await self.leader.acquire(waiting=self.streak.succeeded)
        try:
            self.active = True
            LEADER.set(1)
            log.info("outbox.relay_active", holder=self.leader.holder)
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            async with asyncio.TaskGroup() as group:
                group.create_task(self.leader.hold(conn, lambda: self._busy_since, self._count))
                group.create_task(self._relay_loop())
        finally:
            self._step_down()
            await close_quietly(conn)

    async def _count(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(COUNT_WAITING, timeout=LOCK_IDLE_S)
        WAITING.set(row["waiting"])
        OUTBOX_LAG.set(max(0.0, row["lag_s"]))

    async def _relay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._busy_since = loop.time()
            relayed = await self._relay_batch()
            self._busy_since = None
            self.streak.succeeded()
            if relayed < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)

    async def _relay_batch(self) -> int:
        rows = await self.pool.fetch(db.UNPUBLISHED_BATCH, BATCH)
        if not rows:
            WAITING.set(0)
            OUTBOX_LAG.set(0)
            return 0
        cluster = await self._current_cluster()
        acked, failure = await self._publish(rows)
        if acked:
            await outbox.mark_published(
                self.pool,
                cluster,
                [r["id"] for r in rows[: len(acked)]],
                [m.partition for m in acked],
                [m.offset for m in acked],
            )
            RELAYED.inc(len(acked))
            LAST_PUBLISH.set(time.time())
        if failure is not None:
            raise PublishFailed(f"{len(rows) - len(acked)} rows not acknowledged") from failure
        return len(rows)

    async def _publish(
        self, rows: list[asyncpg.Record]
    ) -> tuple[list[RecordMetadata], BaseException | None]:
        """Send the rows; the acknowledgements of the longest leading run that the broker
        acknowledged (only those are marked, so a key's order survives a partial failure), and
        the error that ended it, if any."""
        producer = self.producer
        if producer is None:
            raise PublishFailed("no producer: the relay publishes only once it has started one")
        futures: list[asyncio.Future] = []
        outer: BaseException | None = None
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                for r in rows:
                    futures.append(
                        await producer.send(
                            r["topic"],
                            value=r["payload"],
                            key=r["key"].encode(),
                            headers=tracing.kafka_headers(r["correlation_id"]),
                        )
                    )
                await asyncio.wait(futures)
        except Exception as exc:  # sorted below: what was acknowledged is kept
            outer = exc
        acked: list[RecordMetadata] = []
        failure: BaseException | None = None
        for future in futures:
            error: BaseException | None
            if not future.done():
                future.cancel()
                error = TimeoutError("send not acknowledged in time")
            elif future.cancelled():
                error = TimeoutError("send cancelled")
            else:
                error = future.exception()  # read for every future, so none is left unread
            if failure is None and error is None:
                acked.append(future.result())
            elif failure is None:
                failure = error
        if failure is None and len(acked) < len(rows):
            failure = outer or TimeoutError("send not queued in time")
        return acked, failure

    async def _current_cluster(self) -> str:
        """The broker's cluster id, asked before each batch, so a row is never recorded under a
        newer cluster than the one it went to (an older one only costs a second publish). A new
        one (the broker lost its log) has its topics made again first."""
        try:
            found = await asyncio.wait_for(self.broker_cluster_id(), SEND_TIMEOUT_S)
        except Exception as exc:
            raise PublishFailed(f"cluster id: {exc!r}") from exc
        if found != self._last_cluster:
            if self._last_cluster is not None:
                log.warning("outbox.new_cluster", previous=self._last_cluster, cluster=found)
            if self.on_new_cluster is not None:
                try:
                    await asyncio.wait_for(self.on_new_cluster(), SEND_TIMEOUT_S)
                except Exception as exc:
                    raise PublishFailed(f"topics on the new cluster: {exc!r}") from exc
        self._last_cluster = found
        return found
