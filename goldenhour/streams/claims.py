"""Claiming due rows: the one way the worker takes timed work, shared by every clock.

Due rows are found through a partial index and claimed with `FOR UPDATE SKIP LOCKED`, so any
number of workers share the work; each row is acted on in a savepoint of the claim's
transaction, so a row that fails is put back with a growing backoff and the others go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
import structlog
from prometheus_client import Counter

from goldenhour.infra import tracing
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import audit
from goldenhour.infra.faults import is_transient
from goldenhour.infra.metrics import CLAIM_BATCH, TIMER_LATENESS
from goldenhour.streams.outcome import Outcome

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A failing row is tried again after this, doubling with each failure in a row up to the cap.
RETRY_AFTER_ERROR = timedelta(seconds=1)
RETRY_CAP = timedelta(seconds=60)

CLOCK_FAILURES = Counter(
    "goldenhour_clock_failures_total", "Due rows whose processing failed and was put back", ["what"]
)


@dataclass(frozen=True)
class Deferral:
    """How a claimer puts back a row whose work failed: later, counted, loudly, on the record."""

    # UPDATE … SET <due> = $2, clock_failures = clock_failures + 1, last_clock_error = $3
    # WHERE <key> = $1 RETURNING clock_failures
    push_back: str
    key: str
    log_event: str
    audit_action: str
    what: str  # the metric's label
    # UPDATE … SET clock_failures = 0, last_clock_error = NULL WHERE <key> = $1, after a success
    reset: str


# What else to do for a row that failed (its failures in a row, the error); in a savepoint.
OnFailure = Callable[[asyncpg.Record, int, Exception], Awaitable[Outcome]]


async def _defer(
    conn: asyncpg.Connection, how: Deferral, row: asyncpg.Record, now: datetime, exc: Exception
) -> int:
    """Keep a failing row from blocking the queue; try it again after a backoff that grows with
    its failures in a row. Returns that count."""
    alert_id = row.get("alert_id")
    failures = (row.get("clock_failures") or 0) + 1
    wait = timedelta(
        seconds=delay(failures, RETRY_AFTER_ERROR.total_seconds(), RETRY_CAP.total_seconds())
    )
    log.error(
        how.log_event,
        child_id=row["child_id"],
        alert_id=str(alert_id) if alert_id else None,
        kind=row["kind"],
        failures=failures,
        retry_in_s=round(wait.total_seconds(), 1),
        error=repr(exc)[:500],
    )
    counted = await conn.fetchval(how.push_back, row[how.key], now + wait, repr(exc)[:500])
    await audit(
        conn,
        how.audit_action,
        row["child_id"],
        alert_id,
        {"kind": row["kind"], "failures": counted, "error": repr(exc)[:500]},
    )
    CLOCK_FAILURES.labels(how.what).inc()
    return int(counted or failures)


async def claim_each(
    conn: asyncpg.Connection,
    query: str,
    now: datetime,
    limit: int,
    act: Callable[[asyncpg.Record], Awaitable[Outcome]],
    defer: Deferral,
    on_failure: OnFailure | None = None,
) -> Outcome:
    """Claim up to `limit` rows due at `now` (`query` takes them `FOR UPDATE SKIP LOCKED`, so
    workers share them) and act on each in one transaction; a row whose act fails is put back
    as `defer` says (then `on_failure` runs in a savepoint of its own), and the others go on."""
    outcome = Outcome()
    late: list[float] = []
    async with conn.transaction():
        rows = await conn.fetch(query, now, limit)
        for row in rows:
            # An alert's steps, and its fallback, are followed under the id of the report that
            # opened it.
            with tracing.bound(row.get("correlation_id")):
                late += await _act_on(conn, row, now, act, defer, on_failure, outcome)
    # Once committed: a claim rolled back fired nothing.
    if rows:
        CLAIM_BATCH.labels(defer.what).observe(len(rows))
    for seconds in late:
        TIMER_LATENESS.labels(defer.what).observe(seconds)
    return outcome


async def _act_on(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    now: datetime,
    act: Callable[[asyncpg.Record], Awaitable[Outcome]],
    defer: Deferral,
    on_failure: OnFailure | None,
    outcome: Outcome,
) -> list[float]:
    """One claimed row acted on in a savepoint (into `outcome`), or deferred; its lateness
    when it was acted on."""
    try:
        async with conn.transaction():  # a savepoint
            outcome.extend(await act(row))
            if row.get("clock_failures"):
                await conn.execute(defer.reset, row[defer.key])
        return [lateness(row, now)]
    except Exception as exc:
        failures = await _defer(conn, defer, row, now, exc)
        if on_failure is None:
            return []
        try:
            async with conn.transaction():
                outcome.extend(await on_failure(row, failures, exc))
        except Exception as also:
            # The deferral above stands whatever this does; a transient failure is the
            # claimer's to retry.
            if is_transient(also):
                raise
            log.error("clock.on_failure_failed", child_id=row["child_id"], error=repr(also))
        return []


def lateness(row: asyncpg.Record, now: datetime) -> float:
    """Seconds the row was fired after it fell due (an alert's `next_due_at`, a timer's
    `due_at`), by the claim's clock."""
    due = row.get("next_due_at") or row.get("due_at")
    return max(0.0, (now - due).total_seconds()) if due is not None else 0.0


async def in_savepoint(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    failed_event: str,
    step: Callable[[], Awaitable[T]],
) -> T | None:
    """`step()` in a savepoint, for one of the ways a failing alert is still told of: if it
    fails for a reason of its own, it is logged and the others still run; a transient failure
    is the caller's to retry."""
    try:
        async with conn.transaction():
            return await step()
    except Exception as also:
        if is_transient(also):
            raise
        log.error(
            failed_event,
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            error=repr(also),
        )
        return None
