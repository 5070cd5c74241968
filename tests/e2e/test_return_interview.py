"""The return home interview (DESIGN.md rule 6): once a missing child is located, the social
worker is reminded at 48 hours and the duty manager alerted at 72 hours unless an interview is
recorded. Here 48 hours are 2 s and 72 hours 4 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import fetchval, place_high_risk_child, report_absence

WATCHERS = {"return_interview_reminder": "2s", "return_interview_due": "4s"}
REMINDER, DUE = 2.0, 4.0
DUTY, SOCIAL_WORKER = "+447700900001", "+447700900003"
DUTY_MAIL, SW_MAIL = "duty@lbh.example", "sw@lbh.example"


async def missing_then_located(system: DevSystem, child_id: str) -> float:
    """The child goes missing and is back at Oak House; return when it was located."""
    await place_high_risk_child(system, child_id)
    await report_absence(system, child_id=child_id)
    at = datetime.now(UTC)
    async with system.client("oak-staff1") as home:
        body = {"located_at": at.isoformat(), "location": "Oak House", "status": "returned"}
        r = await home.post("/events", json=event("child.located", child_id, body))
        assert r.status_code == 202, r.text
    return at.timestamp()


async def interview_done(system: DevSystem, child_id: str, user: str) -> float:
    """Record the interview; return when the API received it, by the system's own clock."""
    body = {"completed_at": datetime.now(UTC).isoformat(), "by": "lbh-sw1"}
    async with system.client(user) as la:
        r = await la.post("/events", json=event("return_interview.completed", child_id, body))
        assert r.status_code == 202, r.text
    sql = "SELECT received_at FROM events WHERE event_id = $1"
    received = await fetchval(system, sql, uuid.UUID(r.json()["event_id"]))
    return received.timestamp()


def sms(system: DevSystem, child_id: str, words: str) -> list:
    return [m for m in system.twilio.messages if child_id in m.body and words in m.body]


def mails(system: DevSystem, child_id: str, words: str) -> list:
    return [m for m in system.smtp.messages if child_id in m.subject and words in m.subject]


async def interview_alerts(system: DevSystem, child_id: str) -> list[dict]:
    async with system.client("lbh-dm1") as la:
        r = await la.get("/alerts", params={"status": "all"})
        assert r.status_code == 200, r.text
        return [
            a for a in r.json() if a["child_id"] == child_id and a["kind"] == "return_interview"
        ]


async def test_reminder_then_overdue_when_no_interview_is_recorded(start_system):
    system = await start_system(watchers=WATCHERS)
    child = "LBH-2026-0042"
    located_at = await missing_then_located(system, child)

    # At 48 hours (2 s): the social worker, and nobody else.
    await eventually(lambda: sms(system, child, "RETURN INTERVIEW DUE"), 10, "reminder")
    [reminder] = sms(system, child, "RETURN INTERVIEW DUE")
    assert reminder.to == SOCIAL_WORKER
    assert located_at + REMINDER <= reminder.received_at <= located_at + REMINDER + 3
    assert "due by" in reminder.body and len(reminder.body) <= 320
    await eventually(lambda: mails(system, child, "RETURN INTERVIEW DUE"), 10, "reminder email")
    assert [m.rcpt_tos for m in mails(system, child, "RETURN INTERVIEW DUE")] == [[SW_MAIL]]
    [alert] = await interview_alerts(system, child)
    assert alert["status"] == "open"

    # At 72 hours (4 s): the duty manager.
    await eventually(lambda: sms(system, child, "RETURN INTERVIEW OVERDUE"), 10, "overdue alert")
    [overdue] = sms(system, child, "RETURN INTERVIEW OVERDUE")
    assert overdue.to == DUTY
    assert located_at + DUE <= overdue.received_at <= located_at + DUE + 3
    await eventually(lambda: mails(system, child, "RETURN INTERVIEW OVERDUE"), 10, "overdue email")
    assert [m.rcpt_tos for m in mails(system, child, "RETURN INTERVIEW OVERDUE")] == [[DUTY_MAIL]]

    # Each once.
    await asyncio.sleep(1.5)
    interview = [m for m in system.twilio.messages if "RETURN INTERVIEW" in m.body]
    assert Counter(m.to for m in interview) == Counter({SOCIAL_WORKER: 1, DUTY: 1})
    assert len(await interview_alerts(system, child)) == 1

    # Recording the interview at last closes the alert for those told.
    await interview_done(system, child, "lbh-sw1")

    def closed() -> list:
        return [
            m for m in system.twilio.messages if m.body.startswith("CLOSED") and child in m.body
        ]

    await eventually(
        lambda: {m.to for m in closed()} >= {SOCIAL_WORKER, DUTY}, 10, "CLOSED messages"
    )
    [alert] = await interview_alerts(system, child)
    assert alert["status"] == "resolved"


async def test_interview_recorded_in_time_stops_every_reminder(start_system):
    system = await start_system(watchers=WATCHERS)
    early, between = "LBH-2026-0043", "LBH-2026-0044"

    # Each interview must reach the system before the deadline it is meant to beat, which the
    # system reckons from the `located_at` it was given: compared on the system's own clock.

    # Recorded before the reminder: nothing, ever.
    early_at = await missing_then_located(system, early)
    recorded = await interview_done(system, early, "lbh-sw1")
    assert recorded < early_at + REMINDER, "the interview was received after the reminder fell due"

    # Recorded after the reminder but before it is overdue: no duty manager alert.
    between_at = await missing_then_located(system, between)
    await eventually(lambda: sms(system, between, "RETURN INTERVIEW DUE"), 10, "reminder")
    recorded = await interview_done(system, between, "lbh-dm1")
    assert recorded < between_at + DUE, "the interview was received after it fell overdue"

    await asyncio.sleep(max(0.0, max(early_at, between_at) + DUE + 1.5 - time.time()))
    assert sms(system, early, "RETURN INTERVIEW") == []
    assert mails(system, early, "RETURN INTERVIEW") == []
    assert await interview_alerts(system, early) == []

    assert [m.to for m in sms(system, between, "RETURN INTERVIEW DUE")] == [SOCIAL_WORKER]
    assert sms(system, between, "RETURN INTERVIEW OVERDUE") == []
    assert mails(system, between, "RETURN INTERVIEW OVERDUE") == []
    [alert] = await interview_alerts(system, between)
    assert alert["status"] == "resolved"
    closed = [
        m for m in system.twilio.messages if m.body.startswith("CLOSED") and between in m.body
    ]
    assert [m.to for m in closed] == [SOCIAL_WORKER]


async def test_every_return_is_due_its_own_interview(start_system):
    """A child back, interview overdue and still not recorded, who goes missing and comes back
    again: the second return is due an interview of its own, with its own reminder."""
    system = await start_system(watchers=WATCHERS)
    child = "LBH-2026-0045"
    await missing_then_located(system, child)
    await eventually(
        lambda: sms(system, child, "RETURN INTERVIEW OVERDUE"), 10, "first overdue alert"
    )

    await report_absence(system, child_id=child)
    again = datetime.now(UTC)
    async with system.client("oak-staff1") as home:
        body = {"located_at": again.isoformat(), "location": "Oak House", "status": "returned"}
        r = await home.post("/events", json=event("child.located", child, body))
        assert r.status_code == 202, r.text

    def second() -> list:
        return [
            m
            for m in sms(system, child, "RETURN INTERVIEW DUE")
            if m.received_at >= again.timestamp()
        ]

    await eventually(lambda: second(), 10, "a reminder for the second return")
    [reminder] = second()
    assert reminder.to == SOCIAL_WORKER
    assert again.timestamp() + REMINDER <= reminder.received_at <= again.timestamp() + REMINDER + 3
