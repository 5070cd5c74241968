"""Phases 2 and 4: timer precision with many clocks pending, and recovery after a SIGKILL.

The clocks are the product's own rows (`watch_timers`, `alerts.next_due_at`), seeded to fall due
while the services run; what is measured is when the streams worker decided each one (the
`decided_at` it records) and, for the clocks that send messages, when the SMS arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from goldenhour.bench import providers, seed
from goldenhour.bench.directory import Directory
from goldenhour.bench.providers import BenchSystem
from goldenhour.bench.stats import summary
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.waiting import eventually

log = structlog.get_logger(__name__)

TIMER_PREFIX = "TM"
_BACKLOG = (
    "SELECT count(*), min(due_at) FROM watch_timers"
    " WHERE status = 'pending' AND due_at <= now() AND child_id LIKE 'TM-%'"
)


async def _backlog_watch(dsn: str, until: float, stop: asyncio.Event) -> dict:
    """Poll the overdue-but-unfired clocks (read by the due index) ten times a second: the
    largest backlog and the oldest overdue clock seen, i.e. lateness as a reader sees it once
    the claim has committed (`decided_at` is when the claim began)."""
    worst_count, worst_age = 0, 0.0
    conn = await asyncpg.connect(dsn)
    try:
        while time.time() < until and not stop.is_set():
            count, oldest = await conn.fetchrow(_BACKLOG)
            worst_count = max(worst_count, count)
            if oldest is not None:
                worst_age = max(worst_age, (datetime.now(UTC) - oldest).total_seconds())
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return {"backlog_max": worst_count, "oldest_overdue_ms": round(worst_age * 1000, 1)}


async def timers(
    system: BenchSystem,
    conn: asyncpg.Connection,
    d: Directory,
    count: int,
    due: int,
    spread: timedelta,
    raise_every: int,
) -> dict:
    """`count` pending check-in clocks, of which `due` fall due evenly over `spread`."""
    started = time.time()
    await seed.children(conn, d, TIMER_PREFIX, count, datetime.now(UTC))
    # A lead so the first clocks are not due before the seed has committed.
    first_due = datetime.now(UTC) + timedelta(seconds=3)
    await seed.checkin_clocks(conn, TIMER_PREFIX, due, first_due, spread, raise_every)
    pending = await conn.fetchval(
        "SELECT count(*) FROM watch_timers WHERE status = 'pending' AND due_at > now()"
    )
    log.info("bench.timers_seeded", clocks=count, due=due, pending_total=pending)
    # Generous: when the worker falls behind, how far behind is the figure wanted.
    deadline = (first_due + spread).timestamp() + max(120.0, spread.total_seconds() * 2)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_backlog_watch(system.database_url, deadline, stop))
    last_due = (first_due + spread).timestamp()

    async def all_fired() -> bool:
        return watcher.done() or (time.time() > last_due and await _left(system, conn) == 0)

    try:
        with contextlib.suppress(AssertionError):
            left = deadline - time.time()
            await eventually(all_fired, left, "every due clock fired", every=0.5)
    finally:
        stop.set()
    backlog = await watcher
    rows = await conn.fetch(
        "SELECT due_at, decided_at FROM watch_timers WHERE child_id LIKE 'TM-%'"
        " AND kind = 'checkin' AND status = 'fired' ORDER BY due_at"
    )
    ran_out = await conn.fetch(
        "SELECT child_id, count(*) AS n FROM audit_log WHERE action = 'watch.checkin_ran_out'"
        " AND child_id LIKE 'TM-%' GROUP BY child_id"
    )
    once = sum(1 for r in ran_out if r["n"] == 1)
    lateness = [(r["decided_at"] - r["due_at"]).total_seconds() * 1000 for r in rows]
    t0 = first_due.timestamp()
    # The welfare concerns' SMS: lateness at the handset, and at most one per recipient.
    await asyncio.sleep(3)
    due_of = {
        r["child_id"]: r["due_at"].timestamp()
        for r in await conn.fetch(
            "SELECT child_id, due_at FROM watch_timers WHERE child_id LIKE 'TM-%'"
            " AND kind = 'checkin' AND status = 'fired' AND right(child_id, 6)::int % $1 = 0",
            raise_every,
        )
    }
    sms = await system.twilio.messages()
    arrivals = providers.first_sms(sms, since=started)
    sms_late = [(arrivals[c] - due) * 1000 for c, due in due_of.items() if c in arrivals]
    per_phone = providers.sms_per_recipient(sms, TIMER_PREFIX, since=started)
    return {
        "timers_pending": count,
        "timers_due": due,
        "pending_total_at_start": pending,
        "timers_fired": len(rows),
        "timers_fired_once": once,
        "timers_fired_twice_or_more": sum(1 for r in ran_out if r["n"] > 1),
        "spread_s": spread.total_seconds(),
        "timer_lateness_ms": summary(lateness, ("p50", "p99", "max")),
        **backlog,
        "concerns_raised": len(due_of),
        "concern_sms_lateness_ms": summary(sms_late, ("p50", "p99", "max")),
        "concern_sms_arrived": len(sms_late),
        "concern_sms_duplicates": sum(1 for n in per_phone.values() if n > 1),
        "series": [
            ((r["due_at"].timestamp() - t0), lat) for r, lat in zip(rows, lateness, strict=True)
        ],
    }


async def _left(system: BenchSystem, conn: asyncpg.Connection) -> int:
    """Seeded clocks not yet fired (the streams part must still be alive)."""
    if not system.parts["streams"].alive():
        raise RuntimeError("the streams part died during the timer phase")
    return await conn.fetchval(
        "SELECT count(*) FROM watch_timers WHERE status = 'pending' AND child_id LIKE 'TM-%'"
        " AND due_at <= now()"
    )


_OVERDUE = (
    "SELECT count(*) FROM alerts WHERE next_due_at <= now() AND length(ack_code) = 9"
    " AND ack_code LIKE '9%'"
)


async def recovery(
    system: BenchSystem, conn: asyncpg.Connection, pending: int, overdue: int, down_s: float
) -> dict:
    """SIGKILL the streams part with `pending` escalation clocks pending; `overdue` of them
    fall due while it is down; restart it and time the first and the last overdue step."""
    started = time.time()
    now = datetime.now(UTC)
    first_due = now + timedelta(seconds=2)
    spread = timedelta(seconds=max(0.5, down_s - 2.5))
    await seed.missing_alerts(conn, TIMER_PREFIX, pending, overdue, first_due, spread, now)
    first = _first_step(system)
    fired_before = await _recovery_steps(conn, first)
    system.parts["streams"].kill()
    killed_at = time.time()
    log.info("bench.streams_killed", pending=pending, fired_before_kill=len(fired_before))
    await asyncio.sleep(max(0.0, (first_due + spread).timestamp() + 0.5 - time.time()))
    overdue_at_restart = await conn.fetchval(_OVERDUE)
    restarted_pid = system.restart("streams").pid
    restarted = time.time()

    async def none_overdue() -> bool:
        if not system.parts["streams"].alive():
            raise RuntimeError("the streams part died after its restart")
        return await conn.fetchval(_OVERDUE) == 0

    all_visible = None
    with contextlib.suppress(AssertionError):
        await eventually(none_overdue, 120, "no clock overdue after the restart", every=0.05)
        all_visible = time.time() - restarted
    ready_at = await conn.fetchval(
        "SELECT extract(epoch FROM ready_at) FROM worker_readiness WHERE part = 'streams'"
        " AND pid = $1",
        restarted_pid,
    )
    await system.wait_ready()
    steps = await _recovery_steps(conn, first)
    after = [s for s in steps if s > restarted]
    await asyncio.sleep(3)
    per_phone = providers.sms_per_recipient(
        await system.twilio.messages(), TIMER_PREFIX, since=started
    )
    return {
        "recovery_pending": pending,
        "recovery_overdue": overdue_at_restart,
        "down_s": round(restarted - killed_at, 2),
        "recovery_s": {
            "first": round(min(after) - restarted, 2) if after else None,
            "all": round(max(after) - restarted, 2) if after else None,
        },
        "recovery_all_visible_s": round(all_visible, 2) if all_visible is not None else None,
        "recovery_ready_s": round(float(ready_at) - restarted, 2) if ready_at else None,
        "recovery_steps_fired": len(steps),
        "recovery_sms_duplicates": sum(1 for n in per_phone.values() if n > 1),
    }


def _first_step(system: BenchSystem) -> str:
    """The stable key of the first step of the policy the seeded alerts follow."""
    return GoldenHourConfig.model_validate(system.config).policy_for("high").steps[0].key


async def _recovery_steps(conn: asyncpg.Connection, first: str) -> list[float]:
    """When each seeded alert's first step was decided (epoch seconds)."""
    rows = await conn.fetch(
        "SELECT extract(epoch FROM s.decided_at) AS at FROM alert_steps s"
        " JOIN alerts a USING (alert_id) WHERE a.ack_code LIKE '9%' AND length(a.ack_code) = 9"
        " AND s.step_key = $1",
        first,
    )
    return [float(r["at"]) for r in rows]
