"""Durable timers: a step that falls due while the streams worker is down fires, once, when a
worker is back."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.e2e.conftest import place_high_risk_child, report_absence, the_alert, until

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}
STEP1 = {"+447700900011", "+447700900002"}


async def test_step_due_while_streams_worker_was_down_fires_once(start_system):
    system = await start_system(scale=0.2)  # the 15-minute step is due 3 s after last seen
    await place_high_risk_child(system)
    await report_absence(system)
    await until(lambda: {m.to for m in system.twilio.messages} >= STEP0, 5, "first wave")

    system.parts["streams"].kill()
    await asyncio.sleep(4)  # the 15-minute step and a reminder fall due with no worker
    assert not {m.to for m in system.twilio.messages} & STEP1

    system.restart("streams")
    await until(lambda: {m.to for m in system.twilio.messages} >= STEP1, 20, "late 15-min step")
    await asyncio.sleep(1)
    alert = await the_alert(system)
    fired = [s["step_key"] for s in alert["steps"] if s["status"] == "fired"]
    assert Counter(fired)["s1"] == 1
    per_step = Counter(
        (n["contact_id"], n["step_key"], n["channel"]) for n in alert["notifications"]
    )
    assert set(per_step.values()) == {1}
    sids = Counter(m.sid for m in system.twilio.messages)
    assert set(sids.values()) == {1}
    escalations = Counter(m.to for m in system.twilio.messages if "ESCALATION" in m.body)
    assert escalations == Counter({phone: 1 for phone in STEP1})
