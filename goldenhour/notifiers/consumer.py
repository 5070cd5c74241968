"""The dispatcher's fast path: `notification.requested` events off Kafka wake it at once.

Rows are the record, so a wake-up lost here (a broker that lost its log, a consumer recreated
past a record) is still found by the sweep. This loop's duties are never to stop and never to
let one bad record stop it: any error recreates the consumer after a backoff with jitter, a
broker that came back with a new cluster id (its log gone) gets a fresh consumer that starts
from the new log's beginning, and a record that cannot be read is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import DERIVED_TYPES, NotificationRequested
from goldenhour.infra import dead_letters
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import beat, mark_ready, unmark_ready
from goldenhour.infra.faults import is_transient
from goldenhour.infra.metrics import CONSUMER_LAG
from goldenhour.infra.topics import Topics, ensure_topics

log = structlog.get_logger(__name__)

PART = "dispatcher"
RESTARTS = Counter(
    "goldenhour_dispatcher_consumer_restarts_total",
    "Times the dispatcher's Kafka consumer was recreated (after an error or a replaced broker)",
)
ASSIGNED = Gauge(
    "goldenhour_dispatcher_consumer_assigned", "1 while the dispatcher's consumer holds its group"
)

REQUESTED = NotificationRequested.model_fields["type"].default
# The other derived events that share the notifications topic: not ours to act on.
IGNORED_TYPES = frozenset(DERIVED_TYPES) - {REQUESTED}
_CHILD_ID = re.compile(r"^[A-Za-z0-9._-]{3,64}$")

BACKOFF_CAP_S = 10.0
PROBE_EVERY_S = 1.0
PROBE_BOUND_S = 3.0
# A broker that has not answered a probe for this long is reported unreachable.
BROKER_STALE_S = 5.0
BEAT_EVERY_S = 2.0
STOP_BOUND_S = 10.0
START_BOUND_S = 30.0
COMMIT_BOUND_S = 5.0
# A dead-letter write that fails this often for a reason that is not transient is logged with
# the record instead, so one bug in the store cannot stall the fast path for ever.
DEAD_LETTER_TRIES = 5


@dataclass(frozen=True)
class Poison:
    """A record on the notifications topic that can never be read as a request."""

    reason: str  # one of infra.dead_letters.REASONS
    error: str
    event_id: uuid.UUID | None = None
    child_id: str | None = None


def read_request(raw: bytes | None) -> NotificationRequested | Poison | None:
    """The request a record carries, None for another derived event, or why it is poison."""
    if not raw:
        return Poison("parse", "empty record")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Poison("parse", f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Poison("parse", f"not a JSON object but {type(data).__name__}")
    kind = data.get("type")
    if kind in IGNORED_TYPES:
        return None
    event_id, child_id = _ids(data)
    if kind != REQUESTED:
        return Poison("validation", f"unknown event type {kind!r}", event_id, child_id)
    if data.get("schema_version") != 1:
        version = data.get("schema_version")
        return Poison("schema", f"unknown schema_version {version!r}", event_id, child_id)
    try:
        return NotificationRequested.model_validate(data)
    except ValidationError as exc:
        return Poison("validation", str(exc), event_id, child_id)


def _ids(data: dict) -> tuple[uuid.UUID | None, str | None]:
    """The event and case ids of a bad record, where they can be read, for the operator."""
    try:
        event_id = uuid.UUID(str(data.get("event_id")))
    except ValueError:
        event_id = None
    child_id = data.get("child_id")
    if not (isinstance(child_id, str) and _CHILD_ID.match(child_id)):
        child_id = None
    return event_id, child_id


class _Membership(ConsumerRebalanceListener):
    """Follows whether the consumer holds its group's partitions."""

    def __init__(self, owner: RequestConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.owner._set_assigned(False)

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.owner._set_assigned(True)


class RequestConsumer:
    """Reads the notifications topic, handing each request to `wake`, until cancelled."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: GoldenHourConfig,
        wake: Callable[[NotificationRequested], None],
        bootstrap: str,
        topic: str,
        group_id: str,
        session_timeout_s: float = 6.0,
        fetch_max_wait_ms: int = 50,
        topics: Topics | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.wake = wake
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.session_timeout_s = session_timeout_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.topics = topics  # created when missing (a broker that lost its log lost them too)
        self.assigned = False
        self.cluster_id: str | None = None
        self.broker_ok_at: float | None = None  # time.monotonic() of the last answered probe
        self.broker_error: str | None = None
        self._marked = False
        self._changed = asyncio.Event()
        self._rng = random.Random()

    # --- health -------------------------------------------------------------------------

    def broker_problem(self) -> str | None:
        """Why the broker cannot be counted on now, or None."""
        if self.broker_ok_at is None or time.monotonic() - self.broker_ok_at > BROKER_STALE_S:
            return f"broker unreachable: {self.broker_error or 'no answer yet'}"
        return None

    def assignment_problem(self) -> str | None:
        """Why this consumer is not taking requests, or None."""
        return None if self.assigned else "the consumer holds no partition assignment"

    # --- the loops ----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume for ever: every failure recreates the consumer after a backoff."""
        tasks = [
            asyncio.create_task(self._watch_cluster(), name="cluster-watch"),
            asyncio.create_task(self._beat_forever(), name="readiness-beat"),
        ]
        failures = 0
        try:
            while True:
                try:
                    await self._consume_until_replaced()
                    failures = 0  # the broker was replaced: a new consumer at once
                    continue
                except Exception as exc:  # this loop must never stop
                    failures += 1
                    RESTARTS.inc()
                    if failures == 1:
                        log.warning("dispatcher.consumer_failed", error=repr(exc)[:500])
                await asyncio.sleep(delay(failures, 0.2, BACKOFF_CAP_S, self._rng))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._set_assigned(False)
            try:
                await self._announce()  # stopping: no longer ready
            except Exception as exc:  # the row's stale beat says it as well
                log.info("dispatcher.unready_unrecorded", error=repr(exc)[:300])

    async def _consume_until_replaced(self) -> None:
        """One consumer's life: returns when the broker's cluster id changes, raises on error."""
        if self.topics is not None:
            async with asyncio.timeout(START_BOUND_S):
                await ensure_topics(self.bootstrap, self.topics)
        cluster = self.cluster_id
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            # Committed after each batch is handled: a poison record read just before a crash
            # is read again and dead-lettered, never skipped.
            enable_auto_commit=False,
            session_timeout_ms=int(self.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(1.0, self.session_timeout_s / 3) * 1000),
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        consumer.subscribe([self.topic], listener=_Membership(self))
        handled: dict[tuple[str, int], int] = {}  # the next offset to handle, per partition

        def lag() -> dict[tuple[str, int], int]:
            # The high watermark of the last fetch less what this consumer has handled: read
            # from what the consumer knows, so a scrape sends the broker nothing.
            behind = {}
            for tp in consumer.assignment():
                end, done = consumer.highwater(tp), handled.get((tp.topic, tp.partition))
                if end is not None and done is not None:
                    behind[(tp.topic, tp.partition)] = end - done
            return behind

        CONSUMER_LAG.track(PART, lag)
        try:
            async with asyncio.timeout(START_BOUND_S):
                await consumer.start()
            log.info("dispatcher.consumer_started", cluster_id=cluster)
            while cluster is None or self.cluster_id in (None, cluster):
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batch.values():
                    for record in records:
                        await self._handle(record)
                        handled[(record.topic, record.partition)] = record.offset + 1
                if batch:
                    await self._commit(consumer)
                cluster = cluster or self.cluster_id
            log.warning("dispatcher.broker_replaced", was=cluster, now=self.cluster_id)
        finally:
            CONSUMER_LAG.untrack(PART, lag)
            self._set_assigned(False)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_BOUND_S):
                    await consumer.stop()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was handled; a failure only means those records come again."""
        try:
            async with asyncio.timeout(COMMIT_BOUND_S):
                await consumer.commit()
        except Exception as exc:  # a redelivery is harmless
            log.info("dispatcher.commit_failed", error=repr(exc)[:300])

    async def _handle(self, record: ConsumerRecord) -> None:
        outcome = read_request(record.value)
        if isinstance(outcome, NotificationRequested):
            self.wake(outcome)
        elif isinstance(outcome, Poison):
            await self._dead_letter(record, outcome)

    async def _dead_letter(self, record: ConsumerRecord, poison: Poison) -> None:
        """Keep the record as a dead letter; wait out a database outage to do it."""
        letter = dead_letters.DeadLetter(
            consumer=PART,
            topic=record.topic,
            raw=record.value or b"",
            reason=poison.reason,
            error=poison.error,
            key=record.key,
            partition=record.partition,
            offset=record.offset,
            event_id=poison.event_id,
            child_id=poison.child_id,
        )
        failures = 0
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await dead_letters.record(conn, letter, self.config, datetime.now(UTC))
                return
            except Exception as exc:  # sorted below: wait, or give up loudly
                failures += 1
                if not is_transient(exc) and failures >= DEAD_LETTER_TRIES:
                    log.error(
                        "dispatcher.dead_letter_unrecorded",
                        error=repr(exc)[:500],
                        reason=poison.reason,
                        partition=record.partition,
                        offset=record.offset,
                        raw=letter.raw[:2000].decode("utf-8", "replace"),
                    )
                    return
                if failures == 1:
                    log.warning("dispatcher.dead_letter_waiting", error=repr(exc)[:300])
            await asyncio.sleep(delay(failures, 0.2, BACKOFF_CAP_S, self._rng))

    async def _watch_cluster(self) -> None:
        """Probe the broker every second: reachability for /readyz, and its cluster id, whose
        change means a new broker whose log (and our group's offsets) began empty."""
        while True:
            try:
                cluster_id = await self._probe()
            except Exception as exc:  # a probe's failure is a health reason
                self.broker_error = repr(exc)[:300]
            else:
                self.broker_ok_at, self.broker_error = time.monotonic(), None
                self.cluster_id = cluster_id
            await asyncio.sleep(PROBE_EVERY_S)

    async def _probe(self) -> str:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(PROBE_BOUND_S * 1000)
        )
        try:
            async with asyncio.timeout(PROBE_BOUND_S):
                await admin.start()
                return str((await admin.describe_cluster())["cluster_id"])
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _beat_forever(self) -> None:
        """Keep this worker's readiness row true: written at once when the assignment changes,
        and beaten every few seconds while it holds its partitions."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), BEAT_EVERY_S)
            self._changed.clear()
            try:
                await self._announce()
            except Exception as exc:  # the next beat tries again
                log.info("dispatcher.beat_failed", error=repr(exc)[:300])

    async def _announce(self) -> None:
        async with asyncio.timeout(STOP_BOUND_S):
            if self.assigned and not self._marked:
                await mark_ready(self.pool, PART)
                self._marked = True
            elif self.assigned:
                await beat(self.pool, PART)
            elif self._marked:
                await unmark_ready(self.pool, PART)
                self._marked = False

    def _set_assigned(self, assigned: bool) -> None:
        """Record the change; the beat loop writes it (a rebalance callback must not wait on the
        database, or a slow one would hold up the group)."""
        self.assigned = assigned
        ASSIGNED.set(1 if assigned else 0)
        self._changed.set()
