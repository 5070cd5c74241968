"""A reporting phone with a fast clock: `last_seen_at` 60 s ahead of the report. The clock runs
from the report's time, so the first wave goes out at once, and the timeline says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import place_high_risk_child, report_absence, step_keys, the_alert

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}


async def test_a_last_seen_time_ahead_of_the_report_does_not_delay_the_first_wave(start_system):
    system = await start_system()
    await place_high_risk_child(system)
    given = datetime.now(UTC) + timedelta(seconds=60)
    accepted = await report_absence(system, last_seen_at=given)

    # Bounded well inside the 60 s the clock would otherwise have waited.
    await eventually(lambda: {m.to for m in system.twilio.messages} >= STEP0, 15, "first wave")
    conn = await asyncpg.connect(system.database_url)
    try:
        received = await conn.fetchval(
            "SELECT received_at FROM events WHERE event_id = $1", accepted["event_id"]
        )
        alert = await conn.fetchrow("SELECT * FROM alerts WHERE kind = 'missing'")
        first = await conn.fetch(
            "SELECT created_at FROM notifications WHERE step_key = $1 AND channel = 'sms'",
            step_keys(system)[0],
        )
    finally:
        await conn.close()
    assert alert["anchor_at"] == received
    assert abs((alert["reported_last_seen_at"] - given).total_seconds()) < 1e-3
    assert len(first) == 3
    assert all(r["created_at"] - received < timedelta(seconds=10) for r in first)

    timeline = await the_alert(system)
    flags = [s for s in timeline["steps"] if s["step_key"] == "last_seen_ahead"]
    assert len(flags) == 1 and "after the report was accepted" in flags[0]["detail"]
