"""Whether this streams worker can make progress: what it is retrying, whether it holds its
partitions, and the heartbeat that tells the rest of the system so.

`/readyz` (infra.health) answers 503 with these reasons: the database or the broker does not
answer, the worker holds no place in the consumer group, intake events have been waiting on a
transient failure for more than a moment, or the clock claimers keep failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient

from goldenhour.infra.backoff import delay
from goldenhour.infra.db import beat, mark_ready, unmark_ready
from goldenhour.infra.dead_letters import count_open
from goldenhour.infra.health import Check

log = structlog.get_logger(__name__)

BEAT_EVERY_S = 2.0
# A single serialization conflict retried at once is no reason to leave the load balancer.
RETRY_UNREADY_AFTER_S = 1.0
CLAIMS_UNREADY_AFTER_S = 3.0
PROBE_TIMEOUT_S = 1.5


class RetryBoard:
    """The records this process retries now after a transient failure, keyed by the caller."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self.last_error = ""

    @property
    def count(self) -> int:
        return len(self._since)

    def enter(self, key: str, exc: BaseException, now: float | None = None) -> bool:
        """Note a failed try of `key`; True when this starts a streak (nothing was retrying)."""
        self.last_error = repr(exc)[:300]
        starts = not self._since
        self._since.setdefault(key, time.monotonic() if now is None else now)
        return starts

    def leave(self, key: str) -> bool:
        """`key` is done; True when that ends a streak (nothing retrying any more)."""
        if self._since.pop(key, None) is None:
            return False
        return not self._since

    def reason(self, now: float | None = None) -> str | None:
        """Why the worker is not ready, if something has waited too long."""
        if not self._since:
            return None
        waited = (time.monotonic() if now is None else now) - min(self._since.values())
        if waited < RETRY_UNREADY_AFTER_S:
            return None
        return (
            f"database unreachable: {self.count} record(s) retrying for {waited:.0f}s"
            f" (last error {self.last_error})"
        )


class ClaimStreak:
    """Consecutive failures of the clock claimers' loops."""

    def __init__(self) -> None:
        self.failures = 0
        self.since: float | None = None
        self.last_error = ""

    def failed(self, exc: BaseException) -> bool:
        """Count a failure; True when it starts a streak."""
        self.failures += 1
        self.last_error = repr(exc)[:300]
        if self.since is None:
            self.since = time.monotonic()
            return True
        return False

    def succeeded(self) -> bool:
        """True when this ends a streak."""
        ended = self.since is not None
        self.failures, self.since = 0, None
        return ended

    def reason(self, now: float | None = None) -> str | None:
        if self.since is None:
            return None
        waited = (time.monotonic() if now is None else now) - self.since
        if waited < CLAIMS_UNREADY_AFTER_S:
            return None
        return f"clock claimers failing for {waited:.0f}s (last error {self.last_error})"


PoolGetter = Callable[[], Awaitable[asyncpg.Pool]]


class WorkerReadiness:
    """Partitions held, the heartbeat in `worker_readiness`, and the checks behind /readyz."""

    def __init__(
        self,
        part: str,
        pool: PoolGetter,
        bootstrap: str,
        board: RetryBoard,
        claims: ClaimStreak,
    ) -> None:
        self.part = part
        self.pool = pool
        self.bootstrap = bootstrap
        self.board = board
        self.claims = claims
        self.assigned = False
        self._marked = False
        self._wake = asyncio.Event()
        self._admin: AIOKafkaAdminClient | None = None

    def on_assigned(self) -> None:
        """faust gave this worker its partitions (possibly none, when replicas outnumber them)."""
        self.assigned = True
        self._wake.set()

    def on_revoked(self) -> None:
        self.assigned = False
        self._wake.set()

    async def heartbeat(self) -> None:
        """Mark ready once assigned, beat while it holds, unmark when revoked; never stops."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                pool = await self.pool()
                if self.assigned and not self._marked:
                    await mark_ready(pool, self.part)
                    self._marked = True
                elif self.assigned:
                    await beat(pool, self.part)
                elif self._marked:
                    await unmark_ready(pool, self.part)
                    self._marked = False
                await count_open(pool)  # dead-letter growth is a metric, not a reason to stop
                if failures:
                    log.info("readiness.beat_recovered", part=self.part)
                failures = 0
                wait = BEAT_EVERY_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the heartbeat must never stop
                failures += 1
                if failures == 1:
                    log.warning("readiness.beat_failed", part=self.part, error=repr(exc)[:300])
                wait = delay(failures, 0.2, BEAT_EVERY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self) -> None:
        """This worker stops taking work: say so, briefly bounded."""
        self.assigned = False
        try:
            async with asyncio.timeout(2.0):
                await unmark_ready(await self.pool(), self.part)
        except Exception as exc:  # a stale beat tells the same within seconds
            log.warning("readiness.unmark_failed", part=self.part, error=repr(exc)[:300])
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._admin.close(), 2.0)

    def checks(self) -> dict[str, Check]:
        """The readiness checks, by name."""
        return {
            "database": self._database,
            "broker": self._broker,
            "partitions": self._partitions,
            "intake": self._intake,
            "clock": self._clock,
        }

    async def _database(self) -> str | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await (await self.pool()).fetchval("SELECT 1")
        except Exception as exc:  # any failure is the reason
            return f"database unreachable: {exc!r}"[:300]
        return None

    async def _broker(self) -> str | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                admin = self._admin
                if admin is None:
                    admin = self._admin = AIOKafkaAdminClient(
                        bootstrap_servers=self.bootstrap, request_timeout_ms=1000
                    )
                    await admin.start()
                await admin.describe_cluster()
        except Exception as exc:  # any failure is the reason
            admin, self._admin = self._admin, None
            if admin is not None:
                asyncio.get_running_loop().create_task(_close_quietly(admin))
            return f"broker unreachable: {exc!r}"[:300]
        return None

    async def _partitions(self) -> str | None:
        return None if self.assigned else "no partitions assigned (joining the consumer group)"

    async def _intake(self) -> str | None:
        return self.board.reason()

    async def _clock(self) -> str | None:
        return self.claims.reason()


async def _close_quietly(admin: AIOKafkaAdminClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(admin.close(), 2.0)
