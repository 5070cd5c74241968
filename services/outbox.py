"""The outbox relay: publishes committed outbox rows to Kafka, in order, and marks them published.

One relay is active at a time (a Postgres advisory lock held on its listening connection), so a
child's events reach Kafka in the order they were accepted even with many API replicas; the
others wait and take over within a second if the active one dies. Rows are marked published only
after the broker acknowledged them: a crash in between re-publishes, and consumers are idempotent
on event_id.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from services.intake import OUTBOX_CHANNEL

log = structlog.get_logger(__name__)

RELAYED = Counter("goldenhour_outbox_relayed_total", "Outbox rows published to Kafka")
LEADER = Gauge("goldenhour_outbox_relay_active", "1 when this process is the active relay")

_RELAY_LOCK = 0x601DE5
BATCH = 500


def kafka_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica, without the idempotent mode that the
    embedded broker lacks; order per key holds because one request per partition is in flight."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        request_timeout_ms=10_000,
    )


class OutboxRelay:
    """Relays the outbox table to Kafka until stopped."""

    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        pool: asyncpg.Pool,
        idle_poll_s: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.producer = producer
        self.pool = pool
        self.idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._notify_wanted = False
        self._notifier: asyncio.Task | None = None
        self.active = False

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
                await self.pool.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox.notify_failed", error=str(exc))
                return

    async def run(self) -> None:
        """Wait for leadership, then relay; reconnect after any database failure."""
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox.reconnect", error=str(exc))
                self.active = False
                LEADER.set(0)
                await asyncio.sleep(1.0)

    async def _run_once(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                await asyncio.sleep(self.idle_poll_s)
            self.active = True
            LEADER.set(1)
            log.info("outbox.relay_active")
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            while True:
                self._wake.clear()
                if await self._relay_batch(conn) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)
        finally:
            self.active = False
            LEADER.set(0)
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _relay_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL"
            " ORDER BY id LIMIT $1",
            BATCH,
        )
        if not rows:
            return 0
        futures = [
            await self.producer.send(r["topic"], value=r["payload"], key=r["key"].encode())
            for r in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1)", [r["id"] for r in rows]
        )
        RELAYED.inc(len(rows))
        return len(rows)
