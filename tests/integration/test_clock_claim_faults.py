"""Clock claimers against a real database: an alert that keeps failing is retried with growing
backoff, counted, its first-step recipients told by a plain fallback message once and the
operations contacts told once; a hung claimer's locks are freed by its connection's bounds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import DbLimits, connect
from goldenhour.streams.clock_store import ClockStore
from tests.integration.rows import seed_child
from tests.integration.streams_worker import (
    absence,
    fetchval,
    prepare,
    produce,
    streams_worker,
)

CHILD = "LBH-2026-0077"
OPERATIONS = [
    {"id": "ops-1", "name": "Ops One", "phone": "+447700900901", "email": "ops1@gh.example"},
    {"id": "ops-2", "name": "Ops Two", "phone": "+447700900902", "email": "ops2@gh.example"},
]
# Step 0 of the directory's high-risk policy, resolved for a child of Hackney at Oak House.
STEP0_CONTACTS = {"mps-cr", "lbh-duty", "oak-mgr"}

# A real database failure on this alert only: its steps cannot be recorded.
REFUSE_STEPS = """
CREATE FUNCTION refuse_steps() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'steps of case % are refused', (SELECT child_id FROM alerts
                                                    WHERE alert_id = NEW.alert_id);
END $$;
CREATE TRIGGER refuse_steps BEFORE INSERT ON alert_steps FOR EACH ROW EXECUTE FUNCTION
    refuse_steps();
"""


def config() -> GoldenHourConfig:
    raw = directory(scale=0.2)[0]
    raw["operations"] = OPERATIONS
    return GoldenHourConfig.model_validate(raw)


FIRST = config().policy_for("high").steps[0].key


@pytest.fixture(autouse=True)
async def seeded(pool: asyncpg.Pool) -> None:
    await seed_child(pool, CHILD, "P-77")


def failures_counted() -> float:
    return REGISTRY.get_sample_value("goldenhour_clock_failures_total", {"what": "alert"}) or 0.0


async def claim_at(pool: asyncpg.Pool, store: ClockStore, now: datetime):
    async with pool.acquire() as conn:
        return await store.claim_due(conn, now, 50)


async def test_a_failing_alert_backs_off_is_counted_and_its_people_are_told(pool):
    store = ClockStore(config())
    await pool.execute(REFUSE_STEPS)
    anchor = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        opened = await store.open_alert(conn, CHILD, "missing", anchor, anchor)
    # The event that opened it stands; its first step could not fire, so the claimers own it.
    alert = await pool.fetchrow("SELECT * FROM alerts")
    assert opened.notifications == [] and alert["first_fired_at"] is None
    assert alert["next_due_at"] == anchor
    counted_before = failures_counted()

    now = anchor
    waits = []
    for failure in range(1, 5):
        outcome = await claim_at(pool, store, now)
        alert = await pool.fetchrow("SELECT * FROM alerts")
        assert alert["clock_failures"] == failure
        assert "steps of case LBH-2026-0077 are refused" in alert["last_clock_error"]
        waits.append((alert["next_due_at"] - now).total_seconds())
        if failure == 1:
            # The plain fallback, in the first claim that failed, announced like any message.
            assert {(n.contact_id, n.channel) for n in outcome.notifications} == {
                (c, ch) for c in STEP0_CONTACTS for ch in ("sms", "email")
            }
        else:
            assert outcome.notifications == []  # once: the message rows' unique key
        # Not due again before its backoff: a claim in between takes nothing.
        await claim_at(pool, store, alert["next_due_at"] - timedelta(milliseconds=5))
        assert await pool.fetchval("SELECT clock_failures FROM alerts") == failure
        now = alert["next_due_at"] + timedelta(milliseconds=1)

    # Exponential with jitter: each wait within [step/2, step] of a doubling 1 s step.
    for failure, wait in enumerate(waits, start=1):
        step = 2 ** (failure - 1)
        assert step / 2 <= wait <= step + 0.01, (failure, waits)
    assert failures_counted() - counted_before == 4

    fallback = await pool.fetch(
        "SELECT * FROM notifications WHERE alert_id = $1 AND step_key = 'fallback'",
        alert["alert_id"],
    )
    assert len(fallback) == 6
    assert {(n["contact_id"], n["channel"]) for n in fallback} == {
        (c, ch) for c in STEP0_CONTACTS for ch in ("sms", "email")
    }
    for n in fallback:
        assert CHILD in n["body"] and alert["ack_code"] in n["body"]
        assert n["status"] == "pending"
    sms = next(n for n in fallback if n["channel"] == "sms")
    assert sms["body"].startswith("GOLDEN HOUR ALERT") and len(sms["body"]) <= 160

    operations = await pool.fetch(
        "SELECT * FROM notifications WHERE alert_id IS NULL AND step_key = $1",
        f"operations:clock_failing:{alert['alert_id']}",
    )
    assert {(n["contact_id"], n["channel"], n["address"]) for n in operations} == {
        ("ops-1", "email", "ops1@gh.example"),
        ("ops-2", "email", "ops2@gh.example"),
    }
    assert CHILD in operations[0]["subject"]
    audit = await pool.fetch(
        "SELECT action, count(*) AS n FROM audit_log WHERE alert_id = $1 GROUP BY action",
        alert["alert_id"],
    )
    actions = {r["action"]: r["n"] for r in audit}
    assert actions["alert.clock_error"] == 4
    assert actions["alert.fallback_sent"] == 1
    assert actions["alert.clock_failing"] == 1

    # Mended: the next claim fires the step, and the count starts again from nothing.
    await pool.execute("DROP TRIGGER refuse_steps ON alert_steps")
    outcome = await claim_at(pool, store, now)
    alert = await pool.fetchrow("SELECT * FROM alerts")
    assert alert["clock_failures"] == 0 and alert["last_clock_error"] is None
    assert alert["first_fired_at"] is not None
    steps = await pool.fetch("SELECT step_key, status FROM alert_steps")
    assert (FIRST, "fired") in {(s["step_key"], s["status"]) for s in steps}
    # The clock's own steps follow, the later ones caught up (the fallback was no step).
    assert FIRST in {n.step_key for n in outcome.notifications}


async def test_an_alert_failing_after_its_first_step_gets_no_fallback(pool):
    store = ClockStore(config())
    anchor = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        opened = await store.open_alert(conn, CHILD, "missing", anchor, anchor)
    assert {n.step_key for n in opened.notifications} == {FIRST}
    await pool.execute(REFUSE_STEPS)
    alert = await pool.fetchrow("SELECT * FROM alerts")
    now = alert["next_due_at"] + timedelta(milliseconds=1)
    for _ in range(3):
        outcome = await claim_at(pool, store, now)
        assert outcome.notifications == []
        now = await pool.fetchval("SELECT next_due_at FROM alerts") + timedelta(milliseconds=1)
    assert await pool.fetchval("SELECT clock_failures FROM alerts") == 3
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE step_key = 'fallback'") == 0
    )
    # The operations contacts still hear of it.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE alert_id IS NULL AND step_key = $1",
            f"operations:clock_failing:{alert['alert_id']}",
        )
        == 2
    )


async def test_other_alerts_of_the_batch_fire_while_one_fails(pool):
    store = ClockStore(config())
    other = "LBH-2026-0078"
    await pool.execute(
        "INSERT INTO children (child_id, local_authority, risk_level, identified_at)"
        " VALUES ($1, 'LBH', 'high', now())",
        other,
    )
    await pool.execute(
        """
        CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT child_id FROM alerts WHERE alert_id = NEW.alert_id) = 'LBH-2026-0077'
            THEN RAISE EXCEPTION 'refused'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_one BEFORE INSERT ON alert_steps FOR EACH ROW
            EXECUTE FUNCTION refuse_one();
        """
    )
    anchor = datetime.now(UTC) - timedelta(seconds=1)
    # Both alerts stand due, as after a restart, and are claimed in one batch.
    for child in (CHILD, other):
        await pool.execute(
            "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
            " local_authority, care_home, ack_code, opened_at, next_due_at)"
            " VALUES ($1, $2, 'missing', 'open', 'high', 'high', $3, 'LBH', 'OAK', $4, $3, $3)",
            uuid.uuid4(),
            child,
            anchor,
            "1111" if child == CHILD else "2222",
        )
    await claim_at(pool, store, datetime.now(UTC))
    rows = {
        r["child_id"]: r
        for r in await pool.fetch("SELECT child_id, clock_failures, first_fired_at FROM alerts")
    }
    assert rows[CHILD]["clock_failures"] == 1 and rows[CHILD]["first_fired_at"] is None
    assert rows[other]["clock_failures"] == 0 and rows[other]["first_fired_at"] is not None


async def test_a_hung_claimers_locks_are_freed_by_its_bound(stack, database_url, tmp_path):
    """A claimer that hangs inside its transaction (here: a connection that locks an alert and
    goes silent) loses the lock to `idle_in_transaction_session_timeout`, and a live worker fires
    the alert's next step within seconds. Without the bound the lock is held for as long as
    the hung holder lives."""
    bounded_child, unbounded_child = "LBH-2026-0201", "LBH-2026-0202"
    await prepare(database_url, [bounded_child, unbounded_child])
    # 1 policy minute = 0.4 s: re-notification and the 15-minute step fall due seconds apart.
    async with streams_worker(stack.kafka_bootstrap, database_url, tmp_path, scale=0.4) as worker:
        await produce(
            stack.kafka_bootstrap,
            worker.topics.intake,
            [(c.encode(), absence(c)[1]) for c in (bounded_child, unbounded_child)],
        )

        async def first_steps() -> bool:
            return await fetchval(database_url, "SELECT count(*) FROM alert_steps") == 2

        await eventually(first_steps, 30, "both alerts' first steps", retry_errors=True)
        bounded = await connect(database_url, DbLimits(idle_in_transaction_s=1.0))
        unbounded = await asyncpg.connect(database_url)  # the server's default: no bound
        try:
            held = {}
            for conn, child in ((bounded, bounded_child), (unbounded, unbounded_child)):
                await conn.execute("BEGIN")
                held[child] = await conn.fetchrow(
                    "SELECT alert_id, next_due_at FROM alerts WHERE child_id = $1 FOR UPDATE",
                    child,
                )
            # ... and both holders go silent.

            async def decisions(child: str) -> int:
                return await fetchval(
                    database_url,
                    "SELECT count(*) FROM alert_steps WHERE alert_id = $1",
                    held[child]["alert_id"],
                )

            due = max(h["next_due_at"] for h in held.values())
            wait = (due - datetime.now(UTC)).total_seconds()
            await eventually(
                lambda: _more_than(decisions(bounded_child), 1),
                max(0.0, wait) + 10,
                "the bounded holder's alert to fire its next step",
                retry_errors=True,
            )
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
                await bounded.fetchval("SELECT 1")  # its session was ended by the server

            # Well past its due time and the bound, the unbounded holder still blocks its alert.
            past = (due - datetime.now(UTC)).total_seconds() + 3
            await asyncio.sleep(max(0.0, past))
            assert await decisions(unbounded_child) == 1
            assert (
                await fetchval(
                    database_url,
                    "SELECT next_due_at FROM alerts WHERE child_id = $1",
                    unbounded_child,
                )
                == held[unbounded_child]["next_due_at"]
            )
            await unbounded.execute("ROLLBACK")
            await eventually(
                lambda: _more_than(decisions(unbounded_child), 1),
                10,
                "the alert to fire once its holder let go",
                retry_errors=True,
            )
        finally:
            for conn in (bounded, unbounded):
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def _more_than(count: Awaitable[int], n: int) -> bool:
    return await count > n
