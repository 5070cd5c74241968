"""The clock's Postgres side against a real database: idempotent intake, firewall, isolation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord, Submitter, parse_event
from goldenhour.dev.london import directory, event
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.handlers import handle_intake
from tests.integration.rows import seed_child

CHILD = "LBH-2026-0042"


def config_with_immigration_org() -> GoldenHourConfig:
    raw = directory()[0]
    raw["organisations"].append({"code": "HOIE", "kind": "immigration_enforcement"})
    return GoldenHourConfig.model_validate(raw)


@pytest.fixture(autouse=True)
async def seeded(pool: asyncpg.Pool) -> None:
    await seed_child(pool, CHILD, "P-1")


def step_keys(config: GoldenHourConfig, policy: str) -> list[str]:
    return [s.key for s in config.policy_for(policy).steps]


@dataclass(frozen=True)
class Worker:
    """The two peers the intake handler calls: the watchers and the alerts' clock."""

    watch: ChildWatch
    clock: ClockStore

    @property
    def config(self) -> GoldenHourConfig:
        return self.clock.config


def worker(config: GoldenHourConfig) -> Worker:
    return Worker(ChildWatch(config), ClockStore(config))


def watch_store() -> Worker:
    return worker(config_with_immigration_org())


async def intake(pool: asyncpg.Pool, w: Worker, rec: IntakeRecord, now: datetime | None = None):
    return await handle_intake(pool, w.watch, w.clock, rec, now)


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
    first = await intake(pool, store, absent, now)
    again = await intake(pool, store, absent, now + timedelta(seconds=1))
    assert len(first.notifications) == 6 and again.events == []
    assert await pool.fetchval("SELECT count(*) FROM alerts") == 1
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 6


async def test_a_second_report_updates_the_open_alert(pool):
    store = watch_store()
    now = datetime.now(UTC)
    await intake(
        pool,
        store,
        record(
            "absence.reported",
            {"last_seen_at": now.isoformat(), "last_seen_location": "Dalston Junction"},
        ),
        now,
    )
    earlier = now - timedelta(minutes=20)
    out = await intake(
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
    assert {n.step_key for n in out.notifications} == {step_keys(store.config, "high")[1]}


async def test_located_resolves_and_stands_down_only_those_told(pool):
    store = watch_store()
    now = datetime.now(UTC)
    await intake(pool, store, record("absence.reported", {"last_seen_at": now.isoformat()}), now)
    await pool.execute("UPDATE notifications SET status = 'sent' WHERE contact_id <> 'oak-mgr'")
    await pool.execute("UPDATE notifications SET status = 'pending' WHERE contact_id = 'oak-mgr'")
    out = await intake(
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
    store = worker(config)
    await pool.execute("UPDATE children SET risk_level = 'medium'")
    now = datetime.now(UTC)
    await intake(
        pool,
        store,
        record("absence.reported", {"last_seen_at": (now - timedelta(minutes=20)).isoformat()}),
        now,
    )
    told = await pool.fetch("SELECT contact_id FROM notifications")
    assert {r["contact_id"] for r in told} == {"oak-mgr"}

    await intake(pool, store, record("risk.signal", {"kind": "unknown_visitor"}), now)
    alert = await pool.fetchrow("SELECT * FROM alerts WHERE kind = 'missing'")
    assert alert["risk_level"] == "high" and alert["next_due_at"] <= now
    async with pool.acquire() as conn:
        out = await store.clock.claim_due(conn, now + timedelta(seconds=1), 50)
    # The high policy's 15-minute step is due 20 minutes after last seen: it fires now.
    fifteen = step_keys(config, "high")[1]
    assert {(n.contact_id, n.step_key) for n in out.notifications} >= {
        ("mps-mpu", fifteen),
        ("lbh-head", fifteen),
    }
    signals = await pool.fetch("SELECT risk_before, risk_after FROM risk_signals")
    assert [tuple(r) for r in signals] == [("medium", "high")]


def medium_and_high(raw: dict | None = None) -> GoldenHourConfig:
    """The issue's example: medium tells the first-step contacts, then the head of service at
    30 minutes; high is the default policy (its 15-minute step: missing persons unit)."""
    raw = raw or directory()[0]
    first = raw["policies"]["high"]["steps"][0]
    raw["policies"]["medium"] = {
        "renotify_every": "10m",
        "renotify_max": 3,
        "steps": [
            first,
            {"after": "30m", "notify": ["local_authority.head_of_service"], "channels": ["sms"]},
        ],
    }
    return GoldenHourConfig.model_validate(raw)


async def test_medium_to_high_at_31_minutes_fires_the_15_minute_step_once_at_once(pool):
    config = medium_and_high()
    store = worker(config)
    await pool.execute("UPDATE children SET risk_level = 'medium'")
    seen = datetime.now(UTC) - timedelta(minutes=31)
    await intake(pool, store, record("absence.reported", {"last_seen_at": seen.isoformat()}))
    medium = step_keys(config, "medium")
    fired = await pool.fetch("SELECT step_key, policy FROM alert_steps WHERE status = 'fired'")
    assert {(r["step_key"], r["policy"]) for r in fired} == {(k, "medium") for k in medium}
    before = await pool.fetchval("SELECT count(*) FROM notifications")

    await intake(pool, store, record("risk.signal", {"kind": "unknown_visitor"}))
    alert = await pool.fetchrow("SELECT * FROM alerts WHERE kind = 'missing'")
    db_now = await pool.fetchval("SELECT now()")
    assert alert["policy"] == "high" and alert["next_due_at"] <= db_now
    assert abs((alert["policy_since"] - db_now).total_seconds()) < 5
    async with pool.acquire() as conn:
        out = await store.clock.claim_due(conn, db_now, 50)
    high = step_keys(config, "high")
    # The 15-minute step fires now; the head of service, told by medium's 30-minute step, is
    # not told again by SMS (and is told by email, a channel the alert had not used for them).
    assert sorted((n.contact_id, n.channel, n.step_key) for n in out.notifications) == sorted(
        [("mps-mpu", "sms", high[1]), ("mps-mpu", "email", high[1]), ("lbh-head", "email", high[1])]
    )
    step = await pool.fetchrow("SELECT * FROM alert_steps WHERE step_key = $1", high[1])
    assert step["status"] == "fired" and step["policy"] == "high"
    assert "not told again (already told by this alert): lbh-head/sms" in step["detail"]
    # The sharing step was due too: decided (fired), not dropped; the hour step still waits.
    assert await pool.fetchval("SELECT status FROM alert_steps WHERE step_key = $1", high[2])
    assert not await pool.fetchval("SELECT 1 FROM alert_steps WHERE step_key = $1", high[3])

    # Down to medium and up to high again, then a deploy that inserts a step into high: only
    # the new step fires; nothing decided under either policy is repeated.
    async with pool.acquire() as conn, conn.transaction():
        await store.clock.set_risk(conn, CHILD, "medium", "test", db_now)
        await store.clock.set_risk(conn, CHILD, "high", "test", db_now)
    async with pool.acquire() as conn:
        again = await store.clock.claim_due(conn, db_now + timedelta(seconds=1), 50)
    assert again.notifications == []
    raw = directory()[0]
    raw["policies"]["high"]["steps"].insert(
        1, {"after": "5m", "notify": ["police.missing_persons_unit"], "channels": ["sms"]}
    )
    inserted = medium_and_high(raw)
    reordered = ClockStore(inserted)
    assert reordered.policies_digest != store.clock.policies_digest
    waiting = await pool.fetchval("SELECT next_due_at FROM alerts WHERE kind = 'missing'")
    assert waiting > db_now + timedelta(minutes=5), "planned for a later wake, not now"
    async with pool.acquire() as conn:
        # The deployed worker wakes what older policies planned, so the new step is decided now.
        assert await reordered.wake_replanned(conn) == 1
        after_deploy = await reordered.claim_due(conn, db_now + timedelta(seconds=2), 50)
        assert await reordered.wake_replanned(conn) == 0, "re-planned under the new policies"
    new_key = step_keys(inserted, "high")[1]
    # The new step is a catch-up too: it tells nobody the alert already told.
    assert after_deploy.notifications == []
    detail = await pool.fetchval("SELECT detail FROM alert_steps WHERE step_key = $1", new_key)
    assert "not told again" in detail and "mps-mpu/sms" in detail
    per_step = await pool.fetch(
        "SELECT step_key, contact_id, channel, count(*) AS n FROM notifications"
        " GROUP BY step_key, contact_id, channel HAVING count(*) > 1"
    )
    assert per_step == []
    assert await pool.fetchval("SELECT count(*) FROM notifications") == before + 3


async def test_steps_recorded_by_position_are_neither_repeated_nor_dropped(pool):
    """An alert opened before steps had stable keys recorded `s0` and `s1`: after the deploy the
    clock takes them for the first two steps of the alert's policy and fires only the third."""
    config = config_with_immigration_org()
    store = ClockStore(config)
    now = await pool.fetchval("SELECT now()")
    alert_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " care_home, local_authority, ack_code, opened_at, next_due_at, first_fired_at,"
        " renotify_done) VALUES ($1, $2, 'missing', 'open', 'high', 'high', $3, 'OAK', 'LBH',"
        " '7001', $3, $4, $3, 3)",
        alert_id,
        CHILD,
        now - timedelta(minutes=31),
        now,
    )
    for key, after in (("s0", 0), ("s1", 15)):
        await pool.execute(
            "INSERT INTO alert_steps (alert_id, step_key, due_at, status, decided_at, detail)"
            " VALUES ($1, $2, $3, 'fired', $3, 'told: someone')",
            alert_id,
            key,
            now - timedelta(minutes=31 - after),
        )
    async with pool.acquire() as conn:
        out = await store.claim_due(conn, now, 50)
    high = step_keys(config, "high")
    assert out.notifications == []  # the third step shares: no message of ours
    rows = await pool.fetch("SELECT step_key, policy, detail FROM alert_steps ORDER BY due_at")
    assert [(r["step_key"], r["policy"]) for r in rows] == [(k, "high") for k in high[:3]]
    assert rows[0]["detail"] == "told: someone (recorded as s0)"


async def test_a_last_seen_time_ahead_of_the_report_anchors_the_clock_at_the_report(pool):
    store = watch_store()
    received = await pool.fetchval("SELECT now()")
    ahead = received + timedelta(seconds=60)
    absent = IntakeRecord(
        event=parse_event(
            event("absence.reported", CHILD, {"last_seen_at": ahead.isoformat()}), received
        ),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=received,
    )
    out = await intake(pool, store, absent)
    alert = await pool.fetchrow("SELECT * FROM alerts")
    assert alert["anchor_at"] == received and alert["reported_last_seen_at"] == ahead
    # The first step is due at once, not 60 s later.
    first = step_keys(store.config, "high")[0]
    sms = await pool.fetch("SELECT * FROM notifications WHERE channel = 'sms'")
    assert {n.step_key for n in out.notifications} == {first} and len(sms) == 3
    assert all(abs((r["created_at"] - received).total_seconds()) < 1 for r in sms)
    assert all(r["next_attempt_at"] <= received + timedelta(seconds=1) for r in sms)
    flag = await pool.fetchrow("SELECT * FROM alert_steps WHERE step_key = 'last_seen_ahead'")
    assert "60 s after the report was accepted" in flag["detail"]
    audit = await pool.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'alert.last_seen_ahead'"
    )
    assert audit["ahead_s"] == 60.0
