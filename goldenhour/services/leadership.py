"""Leadership among replicas, by a Postgres advisory lock that a hung holder loses in seconds,
and the failure streaks of loops that must never stop (the outbox relay, the reconciler)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from goldenhour.infra.backoff import delay
from goldenhour.infra.db import DbLimits, connect
from goldenhour.services import db

log = structlog.get_logger(__name__)

# The server ends a leader's lock session idle this long: a leader that hangs loses its lock and
# a standby takes over. The live leader touches the session every BEAT_S, so only a hang does.
LOCK_IDLE_S = 3.0
BEAT_S = 1.0
LOCK_POLL_S = 1.0
# A batch still running after this has outlived every bound inside it: the leader stops beating
# and so gives the lock to a standby instead of holding it for ever.
STUCK_S = 60.0
BACKOFF_CAP_S = 3.0


def holder_name() -> str:
    """Who holds a leadership, as operators read it on leader_heartbeats."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Streak:
    """A run of failures of one loop: logged once when it starts and once when it ends, and the
    delay before the next try, growing with jitter up to a few seconds."""

    def __init__(self, event: str, cap_s: float = BACKOFF_CAP_S) -> None:
        self.event = event
        self.cap_s = cap_s
        self.failures = 0

    def failed(self, exc: BaseException, **fields: object) -> float:
        """Count a failure; the seconds to wait before trying again."""
        self.failures += 1
        if self.failures == 1:
            log.warning(self.event, error=repr(exc)[:500], **fields)
        return delay(self.failures + 1, 0.2, self.cap_s)

    def succeeded(self) -> None:
        if self.failures:
            log.info(f"{self.event}.recovered", failures=self.failures)
        self.failures = 0


def first_error(exc: BaseException) -> BaseException:
    """The error inside a task group's exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class LeadershipLost(Exception):
    """The leader's lock session ended, or its work stopped making progress."""


class Leader:
    """One active holder of an advisory lock among all replicas, on a bounded connection.

    The lock's session is ended by the server after LOCK_IDLE_S without a statement, so a holder
    that hangs (paused, partitioned) frees it within seconds; the live holder beats every BEAT_S
    (leader_heartbeats, by the database clock), and a standby asks for the lock every LOCK_POLL_S.
    """

    def __init__(self, dsn: str, limits: DbLimits, lock_id: int, role: str) -> None:
        self.dsn = dsn
        self.limits = limits
        self.lock_id = lock_id
        self.role = role
        self.holder = holder_name()

    async def acquire(self, waiting: Callable[[], None] | None = None) -> asyncpg.Connection:
        """Wait until this process holds the lock; its connection, to hold it by."""
        conn = await connect(self.dsn, self.limits, idle_session_s=LOCK_IDLE_S)
        try:
            while not await conn.fetchval(db.TRY_ADVISORY_LOCK, self.lock_id, timeout=LOCK_IDLE_S):
                if waiting is not None:
                    waiting()
                await asyncio.sleep(LOCK_POLL_S)
            await conn.execute(db.BEAT_LEADER, self.role, self.holder, timeout=LOCK_IDLE_S)
        except BaseException:
            await close_quietly(conn)
            raise
        return conn

    async def hold(
        self,
        conn: asyncpg.Connection,
        busy_since: Callable[[], float | None],
        on_beat: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> None:
        """Beat until the session is lost or the work is stuck; then raise LeadershipLost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(BEAT_S)
            started = busy_since()
            if started is not None and loop.time() - started > STUCK_S:
                raise LeadershipLost(f"{self.role}: work stuck for {loop.time() - started:.0f}s")
            if conn.is_closed():
                raise LeadershipLost(f"{self.role}: lock connection closed")
            await conn.execute(db.BEAT_LEADER, self.role, self.holder, timeout=LOCK_IDLE_S)
            if on_beat is not None:
                await on_beat(conn)


async def close_quietly(conn: asyncpg.Connection) -> None:
    """Close a connection that may already be broken, without waiting long."""
    with contextlib.suppress(Exception):
        await conn.close(timeout=2)
    if not conn.is_closed():
        conn.terminate()
