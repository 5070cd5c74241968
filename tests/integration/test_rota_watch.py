"""The rota watch against a real database: a handover is briefed once however many replicas see
it, the one briefed then holds the alert, and a gap ahead is counted and told once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import REGISTRY

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord, Submitter, parse_event
from goldenhour.dev.london import directory, event
from goldenhour.infra import rota_changes
from goldenhour.streams.alert_messages import told
from goldenhour.streams.child_watch import ChildWatch
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.handlers import handle_intake
from goldenhour.streams.handovers import RotaWatch
from tests.integration.rows import seed_child

CHILD = "LBH-2026-0042"
ROTA = "lbh-duty-rota"


def watch(config: GoldenHourConfig, pool: asyncpg.Pool) -> RotaWatch:
    async def getter() -> asyncpg.Pool:
        return pool

    return RotaWatch(config, getter)


async def override(pool: asyncpg.Pool, change: rota_changes.NewChange, now: datetime) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await rota_changes.add(conn, ROTA, "LBH", change, "user:lbh-dm1", now)


async def open_alert(pool: asyncpg.Pool, config: GoldenHourConfig, now: datetime) -> None:
    await seed_child(pool, CHILD, "P-1")
    record = IntakeRecord(
        event=parse_event(
            event("absence.reported", CHILD, {"last_seen_at": now.isoformat()}, now), now
        ),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=now,
    )
    await handle_intake(pool, ChildWatch(config), ClockStore(config), record, now)


async def test_a_handover_is_briefed_once_and_the_one_briefed_holds_the_alert(
    pool: asyncpg.Pool,
) -> None:
    config = GoldenHourConfig.model_validate(directory()[0])
    now = datetime.now(UTC)
    await open_alert(pool, config, now - timedelta(minutes=5))
    handover = now - timedelta(minutes=1)
    await override(
        pool,
        rota_changes.NewChange(
            "override", handover, now + timedelta(hours=1), "replace", "lbh-duty", "lbh-edt-2"
        ),
        now - timedelta(minutes=2),
    )
    replicas = [watch(config, pool) for _ in range(4)]

    async def round_of(w: RotaWatch) -> int:
        async with pool.acquire() as conn:
            return await w.once(conn, now)

    briefed = await asyncio.gather(*(round_of(w) for w in replicas))
    assert sum(briefed) == 1
    assert sum(await asyncio.gather(*(round_of(w) for w in replicas))) == 0  # and never again
    rows = await pool.fetch(
        "SELECT contact_id, channel, body FROM notifications WHERE step_key LIKE 'handover:%'"
    )
    assert sorted((r["contact_id"], r["channel"]) for r in rows) == [
        ("lbh-edt-2", "email"),
        ("lbh-edt-2", "sms"),
    ]
    sms = next(r["body"] for r in rows if r["channel"] == "sms")
    assert CHILD in sms and "HANDOVER" in sms and len(sms) <= 309
    alert_id = await pool.fetchval("SELECT alert_id FROM alerts")
    async with pool.acquire() as conn:
        audience = {(r.contact_id, ch) for r, ch in await told(conn, config, alert_id)}
    assert {("lbh-edt-2", "sms"), ("lbh-edt-2", "email"), ("lbh-duty", "sms")} <= audience


async def test_a_gap_ahead_is_counted_and_told_to_the_duty_managers_once(
    pool: asyncpg.Pool,
) -> None:
    config = GoldenHourConfig.model_validate(directory()[0])
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=3), now + timedelta(hours=5)
    await override(pool, rota_changes.NewChange("override", start, end, "remove", "lbh-duty"), now)
    w = watch(config, pool)
    for n in range(3):
        async with pool.acquire() as conn:
            await w.once(conn, now + timedelta(seconds=15 * n))
    gauge = REGISTRY.get_sample_value("goldenhour_rota_gaps", {"rota_id": ROTA})
    hours = REGISTRY.get_sample_value("goldenhour_rota_gap_hours", {"rota_id": ROTA})
    assert (gauge, hours) == (1.0, 2.0)
    told_rows = await pool.fetch(
        "SELECT contact_id, subject, body FROM notifications WHERE step_key LIKE 'rota_gap:%'"
    )
    assert sorted(r["contact_id"] for r in told_rows) == ["lbh-duty", "lbh-edt-2"]
    assert all("lbh-head" in r["body"] for r in told_rows)  # the fallback, named
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'rota.gap_told'") == 1


async def test_a_change_made_mid_shift_briefs_whoever_it_puts_on_at_once(
    pool: asyncpg.Pool,
) -> None:
    """Asked to count from an hour ago, a replacement counts from when it is made: that is the
    handover, and the one it puts on is briefed on the alert already open."""
    config = GoldenHourConfig.model_validate(directory()[0])
    now = datetime.now(UTC)
    await open_alert(pool, config, now - timedelta(minutes=5))
    made_at = now - timedelta(seconds=20)
    async with pool.acquire() as conn, conn.transaction():
        row = await rota_changes.add(
            conn,
            ROTA,
            "LBH",
            rota_changes.NewChange(
                "override",
                now - timedelta(hours=1),
                now + timedelta(hours=1),
                "replace",
                "lbh-duty",
                "lbh-edt-2",
            ),
            "user:lbh-dm1",
            made_at,
        )
    assert row["start_at"] == made_at
    async with pool.acquire() as conn:
        assert await watch(config, pool).once(conn, now) == 1
    briefed = await pool.fetch(
        "SELECT contact_id, channel FROM notifications WHERE step_key LIKE 'handover:%'"
    )
    assert sorted(tuple(r.values()) for r in briefed) == [
        ("lbh-edt-2", "email"),
        ("lbh-edt-2", "sms"),
    ]
