"""The clock's Postgres side against a real database: idempotent intake, firewall, isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.config import GoldenHourConfig
from contracts.events import IntakeRecord, Submitter, parse_event
from infra.db import create_pool
from infra.devsystem import directory, event
from streams.clock_store import ClockStore
from streams.handlers import handle_intake
from streams.watch_store import WatchStore

CHILD = "LBH-2026-0042"


def config_with_immigration_org() -> GoldenHourConfig:
    raw = directory()[0]
    raw["organisations"].append({"code": "HOIE", "kind": "immigration_enforcement"})
    return GoldenHourConfig.model_validate(raw)


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(migrated_db)
    await p.execute(
        "INSERT INTO children (child_id, local_authority, risk_level, identified_at)"
        " VALUES ($1, 'LBH', 'high', now())",
        CHILD,
    )
    await p.execute(
        "INSERT INTO placements (placement_id, child_id, care_home, started_at)"
        " VALUES ('P-1', $1, 'OAK', now())",
        CHILD,
    )
    yield p
    await p.close()


def watch_store() -> WatchStore:
    config = config_with_immigration_org()
    return WatchStore(config, ClockStore(config))


def record(event_type: str, data: dict, child_id: str = CHILD) -> IntakeRecord:
    now = datetime.now(UTC)
    return IntakeRecord(
        event=parse_event(event(event_type, child_id, data), now),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=now,
    )


async def test_a_replayed_event_changes_nothing(pool):
    store = watch_store()
    absent = record("absence.reported", {"last_seen_at": datetime.now(UTC).isoformat()})
    now = datetime.now(UTC)
    first = await handle_intake(pool, store, absent, now)
    again = await handle_intake(pool, store, absent, now + timedelta(seconds=1))
    assert len(first.notifications) == 6 and again.events == []
    assert await pool.fetchval("SELECT count(*) FROM alerts") == 1
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 6


async def test_a_second_report_updates_the_open_alert(pool):
    store = watch_store()
    now = datetime.now(UTC)
    await handle_intake(
        pool,
        store,
        record(
            "absence.reported",
            {"last_seen_at": now.isoformat(), "last_seen_location": "Dalston Junction"},
        ),
        now,
    )
    earlier = now - timedelta(minutes=20)
    out = await handle_intake(
        pool,
        store,
        record(
            "absence.reported",
            {"last_seen_at": earlier.isoformat(), "last_seen_location": "Hackney Downs"},
        ),
        now,
    )
    alert = await pool.fetchrow("SELECT * FROM alerts")
    assert await pool.fetchval("SELECT count(*) FROM alerts") == 1
    assert alert["anchor_at"] == earlier and alert["last_seen_location"] == "Hackney Downs"
    # The clock moved 20 minutes earlier: the 15-minute step is now due and fired.
    assert {n.step_key for n in out.notifications} == {"s1"}


async def test_located_resolves_and_stands_down_only_those_told(pool):
    store = watch_store()
    now = datetime.now(UTC)
    await handle_intake(
        pool, store, record("absence.reported", {"last_seen_at": now.isoformat()}), now
    )
    await pool.execute("UPDATE notifications SET status = 'sent' WHERE contact_id <> 'oak-mgr'")
    await pool.execute("UPDATE notifications SET status = 'pending' WHERE contact_id = 'oak-mgr'")
    out = await handle_intake(
        pool,
        store,
        record("child.located", {"located_at": now.isoformat(), "status": "found_safe"}),
        now,
    )
    stand_down = {(n.contact_id, n.channel) for n in out.notifications}
    assert stand_down == {(c, ch) for c in ("mps-cr", "lbh-duty") for ch in ("sms", "email")}
    states = await pool.fetch("SELECT status FROM notifications WHERE contact_id = 'oak-mgr'")
    assert {r["status"] for r in states} == {"cancelled"}
    alert = await pool.fetchrow("SELECT * FROM alerts")
    assert alert["status"] == "resolved" and alert["next_due_at"] is None
    due = await pool.fetchval("SELECT return_interview_due_at FROM children")
    assert due == now + timedelta(hours=72)


async def test_a_recipient_list_never_reaches_immigration_enforcement(pool):
    """Asserted where the list is built; the failing alert is deferred, the others still fire."""
    store = ClockStore(config_with_immigration_org())
    now = datetime.now(UTC)
    for child, home in (("LBH-2026-0001", "HOIE"), ("LBH-2026-0002", "OAK")):
        await pool.execute(
            "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
            " care_home, local_authority, ack_code, opened_at, next_due_at)"
            " VALUES ($1, $2, 'missing', 'open', 'high', 'high', $3, $4, 'LBH', $5, $3, $3)",
            uuid.uuid4(),
            child,
            now - timedelta(seconds=1),
            home,
            child[-4:],
        )
    async with pool.acquire() as conn:
        out = await store.claim_due(conn, now, 50)
    assert {n.child_id for n in out.notifications} == {"LBH-2026-0002"}
    assert not await pool.fetchval("SELECT count(*) FROM notifications WHERE org_code = 'HOIE'")
    blocked = await pool.fetchrow("SELECT * FROM alerts WHERE care_home = 'HOIE'")
    assert blocked["next_due_at"] > now
    errors = await pool.fetch("SELECT detail FROM audit_log WHERE action = 'alert.clock_error'")
    assert len(errors) == 1 and "FirewallViolation" in errors[0]["detail"]["error"]


async def test_a_risk_change_applies_to_the_later_steps_of_an_open_alert(pool):
    """Medium: the care home manager, then the duty manager at 30 minutes. A risk signal makes
    the child high: the open alert's later steps follow the high policy at once."""
    raw = directory()[0]
    raw["policies"]["medium"] = {
        "steps": [
            {"after": "0m", "notify": ["care_home.manager"], "channels": ["sms"]},
            {"after": "30m", "notify": ["local_authority.duty_manager"], "channels": ["sms"]},
        ]
    }
    config = GoldenHourConfig.model_validate(raw)
    store = WatchStore(config, ClockStore(config))
    await pool.execute("UPDATE children SET risk_level = 'medium'")
    now = datetime.now(UTC)
    await handle_intake(
        pool,
        store,
        record("absence.reported", {"last_seen_at": (now - timedelta(minutes=20)).isoformat()}),
        now,
    )
    told = await pool.fetch("SELECT contact_id FROM notifications")
    assert {r["contact_id"] for r in told} == {"oak-mgr"}

    await handle_intake(pool, store, record("risk.signal", {"kind": "unknown_visitor"}), now)
    alert = await pool.fetchrow("SELECT * FROM alerts WHERE kind = 'missing'")
    assert alert["risk_level"] == "high" and alert["next_due_at"] <= now
    async with pool.acquire() as conn:
        out = await store.clock.claim_due(conn, now + timedelta(seconds=1), 50)
    # The high policy's 15-minute step is due 20 minutes after last seen: it fires now.
    assert {(n.contact_id, n.step_key) for n in out.notifications} >= {
        ("mps-mpu", "s1"),
        ("lbh-head", "s1"),
    }
    signals = await pool.fetch("SELECT risk_before, risk_after FROM risk_signals")
    assert [tuple(r) for r in signals] == [("medium", "high")]
