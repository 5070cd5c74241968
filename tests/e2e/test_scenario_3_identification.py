"""Acceptance scenario 3: a child identified and not placed in time alerts the duty manager and
the police control room (DESIGN.md rule 1, the identification golden hour).

`placement_within` is 2 s here, so the golden hour after identification passes in two seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import asyncpg

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, event, placement
from goldenhour.dev.waiting import eventually

WITHIN = 2.0  # seconds: the scaled-down golden hour after identification
WATCHERS = {"placement_within": "2s"}
DUTY, CONTROL_ROOM = "+447700900001", "+447700900010"
PHONES = {DUTY, CONTROL_ROOM}
MAILS = {"duty@lbh.example", "cr@mps.example"}
HEADLINE = "GOLDEN HOUR: NO SAFE PLACEMENT"


async def identify(system: DevSystem, child_id: str) -> float:
    """Record `child_id` as identified now; return the instant its golden hour runs out."""
    at = datetime.now(UTC)
    async with system.client("lbh-dm1") as la:
        r = await la.post("/events", json=event("child.identified", child_id, IDENTIFIED, at=at))
        assert r.status_code == 202, r.text
    return at.timestamp() + WITHIN


async def place(system: DevSystem, child_id: str) -> None:
    async with system.client("lbh-dm1") as la:
        r = await la.post("/events", json=event("placement.started", child_id, placement(child_id)))
        assert r.status_code == 202, r.text


def sms_about(system: DevSystem, child_id: str) -> list:
    return [m for m in system.twilio.messages if child_id in m.body]


def alerts_sms(system: DevSystem, child_id: str) -> list:
    return [m for m in sms_about(system, child_id) if HEADLINE in m.body]


def mails_about(system: DevSystem, child_id: str) -> list:
    return [m for m in system.smtp.messages if child_id in m.subject]


async def alerts_of(system: DevSystem, user: str = "lbh-dm1") -> list[dict]:
    async with system.client(user) as c:
        r = await c.get("/alerts", params={"status": "all"})
        assert r.status_code == 200, r.text
        return r.json()


async def test_identified_child_not_placed_in_time_alerts_duty_manager_and_police(start_system):
    system = await start_system(watchers=WATCHERS)
    late, placed = "LBH-2026-0042", "LBH-2026-0043"

    deadline = await identify(system, late)
    placed_deadline = await identify(system, placed)
    await place(system, placed)  # well within its 2 s

    # After ~2 s: one SMS to the duty manager and one to the police control room.
    await eventually(
        lambda: {m.to for m in alerts_sms(system, late)} >= PHONES, 10, "identification SMS"
    )
    first = min(m.received_at for m in alerts_sms(system, late))
    assert first >= deadline, f"alerted {deadline - first:.3f}s before the golden hour ran out"
    assert first <= deadline + 3, f"alerted {first - deadline:.3f}s after the golden hour ran out"
    for sms in alerts_sms(system, late):
        assert late in sms.body and "Reply ACK" in sms.body and len(sms.body) <= 320
    await eventually(lambda: len(mails_about(system, late)) >= 2, 10, "identification emails")

    # The alert is listed with its kind, to both agencies, and can be acknowledged.
    alerts = await alerts_of(system)
    assert [(a["child_id"], a["kind"]) for a in alerts] == [(late, "identification")]
    assert [a["kind"] for a in await alerts_of(system, "mps-cr1")] == ["identification"]
    alert_id = alerts[0]["alert_id"]
    async with system.client("mps-cr1") as police:
        r = await police.post(f"/alerts/{alert_id}/ack")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acknowledged"

    # The child placed in time never gets an alert, even well past its deadline.
    await asyncio.sleep(max(0.0, placed_deadline + 2 - time.time()))
    assert sms_about(system, placed) == []
    assert mails_about(system, placed) == []
    assert [a["child_id"] for a in await alerts_of(system)] == [late]

    # Exactly one SMS and one email per contact for the late child.
    assert Counter(m.to for m in alerts_sms(system, late)) == Counter(dict.fromkeys(PHONES, 1))
    mails = [tuple(m.rcpt_tos) for m in mails_about(system, late)]
    assert sorted(mails) == sorted((a,) for a in MAILS)
    for mail in mails_about(system, late):
        assert HEADLINE in mail.subject

    # A placement at last closes the alert; those told hear that it is closed.
    await place(system, late)
    await eventually(
        lambda: {m.to for m in sms_about(system, late) if m.body.startswith("CLOSED")} >= PHONES,
        10,
        "CLOSED messages",
    )
    async with system.client("lbh-dm1") as la:
        detail = (await la.get(f"/alerts/{alert_id}")).json()
    assert detail["status"] == "resolved"
    assert Counter(m.to for m in alerts_sms(system, late)) == Counter(dict.fromkeys(PHONES, 1))


async def test_identification_clock_survives_a_streams_worker_killed_before_its_deadline(
    start_system,
):
    system = await start_system(watchers=WATCHERS)
    child = "LBH-2026-0044"
    deadline = await identify(system, child)

    # The clock is started (durably) before the worker dies, and the worker dies before the
    # clock fires: what the test is about is that order, not how fast the harness gets there.
    conn = await asyncpg.connect(system.database_url)
    try:

        async def pending() -> int:
            return await conn.fetchval(
                "SELECT count(*) FROM watch_timers WHERE child_id = $1"
                " AND kind = 'identification' AND status = 'pending'",
                child,
            )

        await eventually(pending, 5, "the identification clock to start")
        system.parts["streams"].kill()
        assert await pending() == 1, "the clock fired before the streams worker was killed"
        await asyncio.sleep(max(0.0, deadline + 1.5 - time.time()))
        assert sms_about(system, child) == [], "alerted with no streams worker running"

        system.restart("streams")
        await eventually(
            lambda: {m.to for m in alerts_sms(system, child)} >= PHONES, 30, "late alert"
        )
        await eventually(lambda: len(mails_about(system, child)) >= 2, 10, "late emails")
        await asyncio.sleep(2)  # room for any duplicate to show up

        assert Counter(m.to for m in alerts_sms(system, child)) == Counter(dict.fromkeys(PHONES, 1))
        assert sorted(tuple(m.rcpt_tos) for m in mails_about(system, child)) == sorted(
            (a,) for a in MAILS
        )
        kinds = [a["kind"] for a in await alerts_of(system) if a["child_id"] == child]
        assert kinds == ["identification"]
        fired = await conn.fetchval(
            "SELECT count(*) FROM watch_timers WHERE child_id = $1"
            " AND kind = 'identification' AND status = 'fired'",
            child,
        )
        assert fired == 1
    finally:
        await conn.close()
