"""Acceptance scenario 2: reported 40 minutes after last seen, the 0, 15 and 30 minute steps fire
at once, in order, and each contact gets one message per channel."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import place_high_risk_child, report_absence, step_keys, the_alert

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}
STEP1 = {"+447700900011", "+447700900002"}


async def test_late_report_catches_up_at_once(start_system):
    system = await start_system()  # the real policy: 0, 15, 30, 60 minutes
    await place_high_risk_child(system)
    await report_absence(system, last_seen_at=datetime.now(UTC) - timedelta(minutes=40))

    await eventually(lambda: {m.to for m in system.twilio.messages} >= STEP0 | STEP1, 5, "catch-up")
    await eventually(lambda: len(system.smtp.messages) >= 5, 5, "catch-up emails")
    alert = await the_alert(system)
    steps = {s["step_key"]: s for s in alert["steps"]}
    keys = step_keys(system)
    assert [steps[k]["status"] for k in keys[:3]] == ["fired"] * 3
    assert keys[3] not in steps  # the 60-minute step is still 20 minutes away
    assert alert["next_due_at"] is not None

    # One message per contact and channel, although two steps were due for nobody twice.
    by_phone = Counter(m.to for m in system.twilio.messages)
    assert set(by_phone) == STEP0 | STEP1
    assert set(by_phone.values()) == {1}
    by_mail = Counter(tuple(m.rcpt_tos) for m in system.smtp.messages)
    assert set(by_mail.values()) == {1} and len(by_mail) == 5
    # The first wave is the alert; the 15-minute recipients get the escalation.
    for m in system.twilio.messages:
        assert ("GOLDEN HOUR ALERT" if m.to in STEP0 else "ESCALATION") in m.body
        assert "40 min ago" in m.body or "41 min ago" in m.body
    fired_at = [s["decided_at"] for s in alert["steps"] if s["status"] == "fired"]
    assert len(set(fired_at)) == 1  # all in the same claim, in one transaction
