"""Regression: a 3-minute Twilio storm (every SMS create answering 500) followed by recovery.

Before the retry budget, the SMS was marked failed after 154 s and never sent. Now each first
SMS goes out once Twilio recovers, and each contact was called after the default 2-minute
`sms_failover_after`, never before. Real time throughout: about four minutes."""

from __future__ import annotations

import time

import asyncpg
import pytest

from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import place_high_risk_child, report_absence

FIRST = {"+447700900010": "mps-cr", "+447700900001": "lbh-duty", "+447700900020": "oak-mgr"}
STORM_S = 180.0
FAILOVER_S = 120.0


@pytest.mark.timeout(480)
async def test_sms_goes_out_after_a_three_minute_storm_and_calls_follow_at_two_minutes(
    start_system,
):
    system = await start_system()  # real-time policy, default delivery settings
    twilio = system.twilio
    await place_high_risk_child(system)
    twilio.outage(500, STORM_S, ops=("create",))
    storm_ends = time.time() + STORM_S
    await report_absence(system)

    await eventually(lambda: {c.to for c in twilio.calls} >= set(FIRST), FAILOVER_S + 30, "calls")
    await eventually(lambda: {m.to for m in twilio.messages} >= set(FIRST), STORM_S + 60, "SMS")

    db = await asyncpg.connect(system.database_url)
    try:
        rows = await db.fetch(
            "SELECT contact_id, channel, created_at, status, attempts FROM notifications"
            " WHERE contact_id = ANY($1) AND channel IN ('sms', 'voice')",
            list(FIRST.values()),
        )
    finally:
        await db.close()
    sms_created = {
        r["contact_id"]: r["created_at"].timestamp() for r in rows if r["channel"] == "sms"
    }
    for phone, contact in FIRST.items():
        texts = [m for m in twilio.messages_to(phone) if "GOLDEN HOUR" in m.body]
        assert len(texts) == 1, (contact, [m.body for m in texts])
        assert texts[0].received_at >= storm_ends - 1.0, "nothing got through the storm"
        calls = twilio.calls_to(phone)
        assert len(calls) == 1, (contact, len(calls))
        # The database and this process share the machine's clock.
        waited = calls[0].received_at - sms_created[contact]
        assert FAILOVER_S <= waited < STORM_S, (contact, waited)
    assert all(r["status"] in ("sent", "delivered") for r in rows), [dict(r) for r in rows]
