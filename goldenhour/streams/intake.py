"""The intake agent's batch: each record read on its own, each child's events applied in order,
each failure sorted.

- A record that does not parse, has an unknown `schema_version` or fails validation is poison: it
  becomes a dead letter at once, and the rest of its batch goes on.
- A transient failure (the database unreachable, a timeout, a serialization conflict) is retried
  without limit, with backoff, holding that child's later events; other children go on.
- Any other failure is retried a few times while the database answers; if it repeats, the
  handler fails on this input every time, and the event becomes a dead letter (reason
  `handler`) instead of blocking its partition.

Nothing here raises out of `apply_batch` but cancellation: faust would move past the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord
from goldenhour.infra import dead_letters, tracing
from goldenhour.infra.backoff import delay
from goldenhour.infra.faults import is_transient, timed_out
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.handlers import CONSUMER, Poison, handle_intake, read_record
from goldenhour.streams.outcome import Outcome
from goldenhour.streams.readiness import RetryBoard

log = structlog.get_logger(__name__)

RETRIES = Counter(
    "goldenhour_intake_retries_total", "Intake events tried again after a failure", ["kind"]
)
APPLIED = Counter("goldenhour_intake_applied_total", "Intake events applied (or replays skipped)")
RETRYING = Gauge(
    "goldenhour_intake_retrying", "Intake events waiting on a transient failure right now"
)

# Tries of an event whose handler fails while the database answers, before it is dead-lettered.
HANDLER_ATTEMPTS = 3
# A statement timeout is transient while the database struggles; an event whose statement keeps
# timing out on a database that answers everything else would hold its batch (and so every child
# of its partitions) for ever: after this many in a row it is the event's fault.
SLOW_ATTEMPTS = 6
RETRY_BASE_S = 0.2
RETRY_CAP_S = 5.0
PROBE_TIMEOUT_S = 2.0

PoolGetter = Callable[[], Awaitable[asyncpg.Pool]]
Publish = Callable[[dead_letters.DeadLetter], Awaitable[None]]


@dataclass(frozen=True)
class Incoming:
    """One record as it came off the intake topic."""

    raw: bytes
    key: bytes | None
    topic: str
    partition: int | None = None
    offset: int | None = None
    # The id of the request that wrote it (infra/tracing.py), from the record's headers.
    correlation_id: str | None = None


class IntakeApplier:
    """Applies batches of intake records; see the module docstring for how failures are sorted."""

    def __init__(
        self,
        pool: PoolGetter,
        watch: ChildWatch,
        clock: ClockStore,
        config: GoldenHourConfig,
        board: RetryBoard,
        publish_dead: Publish,
        children_at_once: int = 8,
    ) -> None:
        self.pool = pool
        self.watch = watch
        self.clock = clock
        self.config = config
        self.board = board
        self.publish_dead = publish_dead
        self._side_by_side = asyncio.Semaphore(children_at_once)

    async def apply_batch(self, batch: Sequence[Incoming]) -> Outcome:
        """Every record of the batch applied or dead-lettered; what to announce."""
        lanes: dict[object, list[tuple[Incoming, IntakeRecord | Poison]]] = {}
        for index, item in enumerate(batch):
            read = read_record(item.raw)
            child = read.event.child_id if isinstance(read, IntakeRecord) else read.child_id
            # A record with no readable child holds nobody's order: a lane of its own.
            lane = child if child else ("unreadable", item.key, index)
            lanes.setdefault(lane, []).append((item, read))
        outcomes = await asyncio.gather(*(self._lane(items) for items in lanes.values()))
        total = Outcome()
        for outcome in outcomes:
            total.extend(outcome)
        return total

    async def _lane(self, items: list[tuple[Incoming, IntakeRecord | Poison]]) -> Outcome:
        """One child's records of a batch, in their order."""
        outcome = Outcome()
        async with self._side_by_side:
            for item, read in items:
                try:
                    with tracing.bound(item.correlation_id):
                        if isinstance(read, Poison):
                            await self.dead_letter(item, read)
                        else:
                            outcome.extend(await self.apply(item, read))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # never lose the rest of the lane
                    log.exception("intake.unexpected", error=repr(exc))
        return outcome

    async def apply(self, item: Incoming, record: IntakeRecord) -> Outcome:
        """Apply one event: transient failures without limit, a repeating one dead-lettered."""
        event = record.event
        bound = log.bind(event_id=str(event.event_id), child_id=event.child_id)
        key = str(event.event_id)
        failures = attempts = slow = 0
        try:
            while True:
                attempts += 1
                try:
                    # The database's clock, read in the event's transaction.
                    outcome = await handle_intake(
                        await self.pool(), self.watch, self.clock, record, now=None
                    )
                    APPLIED.inc()
                    return outcome
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # sorted below, never swallowed
                    if timed_out(exc) and await self._database_answers():
                        slow += 1
                        if slow >= SLOW_ATTEMPTS:
                            error = f"timed out {slow} times while the database answered: {exc!r}"
                            bound.error("intake.too_slow", attempts=slow, error=error[:500])
                            poison = Poison("handler", error, event.event_id, event.child_id)
                            await self.dead_letter(item, poison)
                            return Outcome()
                    if is_transient(exc) or not await self._database_answers():
                        if self.board.enter(key, exc):
                            bound.warning("intake.retrying", error=repr(exc)[:300])
                        RETRYING.set(self.board.count)
                        RETRIES.labels("transient").inc()
                        await asyncio.sleep(delay(attempts, RETRY_BASE_S, RETRY_CAP_S))
                        continue
                    failures += 1
                    RETRIES.labels("handler").inc()
                    bound.error("intake.failed", attempt=failures, error=repr(exc)[:500])
                    if failures >= HANDLER_ATTEMPTS:
                        poison = Poison("handler", repr(exc), event.event_id, event.child_id)
                        await self.dead_letter(item, poison)
                        return Outcome()
                    await asyncio.sleep(delay(failures, RETRY_BASE_S, 1.0))
        finally:
            if self.board.leave(key):
                bound.info("intake.recovered", attempts=attempts)
            RETRYING.set(self.board.count)

    async def dead_letter(self, item: Incoming, poison: Poison) -> None:
        """Keep the record as a dead letter (retried until the database takes it), then put it
        on the dead-letters topic for whoever watches there."""
        letter = dead_letters.DeadLetter(
            consumer=CONSUMER,
            topic=item.topic,
            raw=item.raw,
            reason=poison.reason,
            error=poison.error,
            key=item.key,
            partition=item.partition,
            offset=item.offset,
            event_id=poison.event_id,
            child_id=poison.child_id,
        )
        key = f"dead:{item.topic}:{item.partition}:{item.offset}"
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    pool = await self.pool()
                    async with pool.acquire() as conn, conn.transaction():
                        await dead_letters.record(conn, letter, self.config, datetime.now(UTC))
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the letter must be kept: try again
                    if self.board.enter(key, exc):
                        log.warning(
                            "dead_letter.retrying",
                            event_id=str(poison.event_id) if poison.event_id else None,
                            child_id=poison.child_id,
                            error=repr(exc)[:300],
                        )
                    await asyncio.sleep(delay(attempts, RETRY_BASE_S, RETRY_CAP_S))
        finally:
            self.board.leave(key)
        try:
            await asyncio.wait_for(self.publish_dead(letter), PROBE_TIMEOUT_S * 2)
        except Exception as exc:  # best effort: the table is the record
            log.warning("dead_letter.publish_failed", error=repr(exc)[:300])

    async def _database_answers(self) -> bool:
        """Whether the database answers at all: a failure while it does not is no proof that
        the event is at fault."""
        try:
            pool = await self.pool()
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                return await pool.fetchval("SELECT 1") == 1
        except Exception:  # any failure to answer means "not now"
            return False
