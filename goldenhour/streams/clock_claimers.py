"""The `clock_claimers` task: loops that wake at the next due time and claim due watch timers
and alerts by index with `FOR UPDATE SKIP LOCKED`, so every loop of every replica shares the
timers and none fires a step twice. They survive any failure (logged once per streak, backed
off with jitter)."""

from __future__ import annotations

import asyncio

import faust
import structlog
from prometheus_client import Counter

from goldenhour.infra.backoff import delay
from goldenhour.streams import watch_timers
from goldenhour.streams.announcer import Announcer
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.intake import PoolGetter
from goldenhour.streams.readiness import ClaimStreak

log = structlog.get_logger(__name__)

CLAIM_ERRORS = Counter("goldenhour_clock_claim_errors_total", "Clock claimer rounds that failed")

# The claimer looks at the index at least this often, so a clock started by another replica
# fires within this bound even without a wake-up.
MAX_SLEEP_S = 0.2
MIN_SLEEP_S = 0.02
# Small batches: each is one transaction holding its alerts' locks until it commits.
CLAIM_BATCH = 50
CLAIMERS = 4
# Seconds from the database's now to the next due time, by the same clock the claims use.
NEXT_DUE = """
SELECT extract(epoch FROM
    least((SELECT min(next_due_at) FROM alerts WHERE next_due_at IS NOT NULL),
          (SELECT min(due_at) FROM watch_timers WHERE status = 'pending')) - clock_timestamp())
"""


class ClockClaimers:
    """The claimer loops of one worker."""

    def __init__(
        self,
        pool: PoolGetter,
        watch: ChildWatch,
        clock: ClockStore,
        claims: ClaimStreak,
        announcer: Announcer,
    ) -> None:
        self.pool = pool
        self.watch = watch
        self.clock = clock
        self.claims = claims
        self.announcer = announcer

    async def run(self) -> None:
        """Re-plan once, then claim for ever."""
        await self.wake_replanned()
        # Several loops share the due rows through FOR UPDATE SKIP LOCKED: while one waits on
        # Postgres, another fires.
        await asyncio.gather(*(self.claimer() for _ in range(CLAIMERS)))

    async def wake_replanned(self) -> None:
        """Once at start, until it succeeds: alerts planned under other policies re-plan now."""
        failures = 0
        while True:
            try:
                db = await self.pool()
                async with db.acquire() as conn:
                    woken = await self.clock.wake_replanned(conn)
                if woken:
                    log.info("clock.replanned", alerts=woken, policies=self.clock.policies_digest)
                return
            except Exception as exc:  # the clock must start whatever this does
                failures += 1
                log.warning("clock.replan_failed", error=repr(exc)[:300])
                await asyncio.sleep(delay(failures, 0.2, 5.0))

    async def claimer(self) -> None:
        """One loop; the clock must never stop."""
        while True:
            try:
                sleep = await self.claim_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.claims.failed(exc):
                    log.error("clock.claim_failed", error=repr(exc)[:500])
                CLAIM_ERRORS.inc()
                sleep = delay(self.claims.failures, 0.2, 5.0)
            await asyncio.sleep(sleep)

    async def claim_once(self) -> float:
        """One round of claims; how long to sleep before the next."""
        db = await self.pool()
        async with db.acquire() as conn:
            # Every due time is compared with the database's clock, read once per round: a
            # worker host whose clock is off fires nothing early or late.
            now = await conn.fetchval("SELECT clock_timestamp()")
            outcome = await watch_timers.claim_due(self.watch, self.clock, conn, now, CLAIM_BATCH)
            outcome.extend(await self.clock.claim_due(conn, now, CLAIM_BATCH))
            next_due = await conn.fetchval(NEXT_DUE)
        if self.claims.succeeded():
            log.info("clock.claim_recovered")
        self.announcer.announce_later(outcome)
        if next_due is None:
            return MAX_SLEEP_S
        # A row due but held by another worker (or a hung one, until its bound frees it) is
        # skipped: without a floor the loop would spin on it.
        floor = 0.0 if outcome.events else MIN_SLEEP_S
        return min(MAX_SLEEP_S, max(floor, float(next_due)))


def add_clock_claimers(app: faust.App, claimers: ClockClaimers) -> None:
    """Register the task on `app`."""

    @app.task
    async def clock_claimers() -> None:
        await claimers.run()
