"""Acceptance scenario 1: report, first alerts in a second, escalation, ACK by SMS, stand-down.

Policy minutes are scaled to 0.2 s, so the golden hour passes in 12 seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import asyncpg

from goldenhour.dev.devsystem import TWILIO_FROM
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import (
    CHILD,
    fetch,
    place_high_risk_child,
    post_event,
    report_absence,
    step_keys,
    the_alert,
)

FIRST = {"+447700900010": "mps-cr", "+447700900001": "lbh-duty", "+447700900020": "oak-mgr"}
SECOND = {"+447700900011": "mps-mpu", "+447700900002": "lbh-head"}
NATIONAL = "+447700900030"


async def test_golden_hour_from_report_to_stand_down(start_system):
    system = await start_system(scale=0.2, extra_unless_ack_step=True)
    await place_high_risk_child(system)

    await report_absence(system)

    # At once: police control room, duty manager and care home manager, SMS and email. (How
    # fast is the benchmark's to measure, not a timed assertion: tens of milliseconds there.)
    await eventually(lambda: {m.to for m in system.twilio.messages} >= set(FIRST), 10, "first SMS")
    await eventually(lambda: len(system.smtp.messages) >= 3, 5, "first emails")
    first_wave = [m for m in system.twilio.messages if "GOLDEN HOUR ALERT" in m.body]
    assert sorted(m.to for m in first_wave) == sorted(FIRST)
    assert {tuple(m.rcpt_tos) for m in system.smtp.messages} == {
        ("cr@mps.example",),
        ("duty@lbh.example",),
        ("mgr@oak.example",),
    }
    for sms in first_wave:
        assert CHILD in sms.body and "HIGH" in sms.body and "Mare Street" in sms.body
        assert len(sms.body) <= 320
        assert "Reply ACK" in sms.body

    # Nobody acknowledges: the 15-minute step (3 s) reaches the missing persons unit and head.
    await eventually(
        lambda: {m.to for m in system.twilio.messages} >= set(SECOND), 8, "15-min step"
    )

    # The duty manager replies ACK <code> by SMS.
    alert = await the_alert(system)
    code = first_wave[0].body.rsplit("ACK ", 1)[1].split()[0]
    status, reply = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound",
        "+447700900001",
        TWILIO_FROM,
        f"ack {code}",
    )
    assert status == 200 and "acknowledged case" in reply
    acked_at = time.time()

    # The 45-minute unless-acknowledged step (9 s) never fires; the 60-minute one (12 s) does.
    await eventually(
        lambda: any(m.to == NATIONAL for m in system.twilio.messages), 15, "60-min step"
    )
    alert = await the_alert(system)
    steps = {s["step_key"]: s for s in alert["steps"]}
    s0, s1, s2, s3, s4 = step_keys(system)
    assert steps[s0]["status"] == "fired"
    assert steps[s1]["status"] == "fired"
    assert steps[s2]["status"] == "fired"  # the shared-alert step still fires after the ACK
    assert steps[s3]["status"] == "skipped"
    assert steps[s4]["status"] == "fired"
    late_mpu = [m for m in system.twilio.messages_to("+447700900011") if m.received_at > acked_at]
    assert late_mpu == []
    assert alert["status"] == "acknowledged"
    assert [(a["contact_id"], a["via"]) for a in alert["acknowledgements"]] == [("lbh-duty", "sms")]
    # No reminders after the acknowledgement.
    assert not [
        m for m in system.twilio.messages if "REMINDER" in m.body and m.received_at > acked_at + 0.5
    ]

    # Each contact got exactly one message per step and channel.
    keys = Counter((n["contact_id"], n["step_key"], n["channel"]) for n in alert["notifications"])
    assert max(keys.values()) == 1
    per_phone_step = Counter((m.to, m.body.split(":")[0]) for m in system.twilio.messages)
    assert max(per_phone_step.values()) <= 4  # alert + up to 3 reminders, never a duplicate step

    # Each delivery is on the audit log once, as the provider's word, against its message. The
    # alert and the audit log are two reads, and a delivery may land between them: they are
    # compared until they agree, and a failure shows both lists.
    async def deliveries_audited() -> tuple[dict, list]:
        alert = await the_alert(system)
        delivered = sorted(
            str(n["notification_id"]) for n in alert["notifications"] if n["status"] == "delivered"
        )
        audited = await fetch(
            system,
            "SELECT detail, child_id, actor FROM audit_log"
            " WHERE action = 'notification.delivered' AND alert_id = $1",
            uuid.UUID(alert["alert_id"]),
        )
        on_the_log = sorted(json.loads(a["detail"])["notification_id"] for a in audited)
        assert on_the_log == delivered, f"audited {on_the_log}, delivered {delivered}"
        return alert, audited

    alert, audited = await eventually(deliveries_audited, 10, "every delivery audited once")
    # Delivery status came back from the provider for the SMS.
    sms_states = {n["status"] for n in alert["notifications"] if n["channel"] == "sms"}
    assert sms_states <= {"delivered", "sent"} and "delivered" in sms_states
    assert {(a["child_id"], a["actor"]) for a in audited} == {(CHILD, "system:provider")}

    # child.located stands everyone told down and schedules the return interview.
    told = {n["contact_id"] for n in alert["notifications"]}
    located = {
        "located_at": datetime.now(UTC).isoformat(),
        "location": "Oak House",
        "status": "returned",
    }
    r = await post_event(system, "oak-staff1", event("child.located", CHILD, located))
    assert r.status_code == 202, r.text
    await eventually(
        lambda: sum("STAND DOWN" in m.body for m in system.twilio.messages) >= len(told),
        5,
        "stand-downs",
    )
    alert = await the_alert(system)
    assert alert["status"] == "resolved" and alert["resolution"] == "returned"
    stood_down = {n["contact_id"] for n in alert["notifications"] if n["step_key"] == "stand_down"}
    assert stood_down == told
    conn = await asyncpg.connect(system.database_url)
    try:
        due = await conn.fetchval(
            "SELECT return_interview_due_at FROM children WHERE child_id = $1", CHILD
        )
        audit = await conn.fetch("SELECT action FROM audit_log WHERE child_id = $1", CHILD)
    finally:
        await conn.close()
    assert due is not None
    actions = {r["action"] for r in audit}
    assert {
        "alert.raised",
        "alert.step_fired",
        "alert.step_skipped",
        "alert.acknowledged",
        "alert.resolved",
        "notification.sent",
    } <= actions
