"""The check-in watcher (DESIGN.md rule 2): a missed check-in raises a welfare concern to the care
home manager and the social worker, then the duty manager; a check-in closes it.

One check-in "minute" is a second here: a placement with `checkin_interval_minutes: 3` expects a
check-in every 3 s, and the concern is due 1 s (the grace) after that.
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
from tests.e2e.helpers import CHILD

WATCHERS = {"checkin_interval_unit": "1s", "checkin_grace": "1s", "concern_escalate_after": "2s"}
INTERVAL, GRACE, ESCALATE = 3.0, 1.0, 2.0
PLACEMENT_ID = f"{CHILD}-P1"
OAK_MGR, SOCIAL_WORKER, DUTY = "+447700900020", "+447700900003", "+447700900001"
FIRST = {OAK_MGR, SOCIAL_WORKER}
CONCERN = "WELFARE CONCERN"


async def place_with_checkins(system: DevSystem) -> float:
    """Identify and place the child with 3-minute check-ins; return when the concern is due."""
    at = datetime.now(UTC)
    async with system.client("lbh-dm1") as la:
        r = await la.post("/events", json=event("child.identified", CHILD, IDENTIFIED))
        assert r.status_code == 202, r.text
        data = {**placement(CHILD), "checkin_interval_minutes": 3}
        r = await la.post("/events", json=event("placement.started", CHILD, data, at=at))
        assert r.status_code == 202, r.text
    return at.timestamp() + INTERVAL + GRACE


def checkin(placement_id: str = PLACEMENT_ID, child_id: str = CHILD) -> dict:
    seen = datetime.now(UTC)
    return event(
        "checkin.recorded", child_id, {"placement_id": placement_id, "seen_at": seen.isoformat()}
    )


async def record_checkin(system: DevSystem) -> float:
    """A check-in by Oak House staff now; return when the next concern would be due."""
    body = checkin()
    async with system.client("oak-staff1") as home:
        r = await home.post("/events", json=body)
        assert r.status_code == 202, r.text
    return datetime.fromisoformat(body["data"]["seen_at"]).timestamp() + INTERVAL + GRACE


def concerns(system: DevSystem) -> list:
    return [m for m in system.twilio.messages if CONCERN in m.body and CHILD in m.body]


def escalations(system: DevSystem) -> list:
    return [
        m
        for m in system.twilio.messages
        if m.body.startswith("ESCALATION") and f"no check-in for case {CHILD}" in m.body
    ]


def closed(system: DevSystem) -> list:
    return [m for m in system.twilio.messages if m.body.startswith("CLOSED") and CHILD in m.body]


async def alerts(system: DevSystem, user: str = "lbh-dm1") -> list[dict]:
    async with system.client(user) as c:
        r = await c.get("/alerts", params={"status": "all"})
        assert r.status_code == 200, r.text
        return r.json()


async def sleep_until(instant: float) -> None:
    await asyncio.sleep(max(0.0, instant - time.time()))


async def test_missed_checkin_raises_a_concern_escalates_and_a_checkin_closes_it(start_system):
    system = await start_system(watchers=WATCHERS)
    due = await place_with_checkins(system)

    # At the deadline: the care home manager and the social worker, SMS and email.
    await eventually(lambda: {m.to for m in concerns(system)} >= FIRST, 10, "welfare concern")
    first = min(m.received_at for m in concerns(system))
    assert first >= due, f"concern {due - first:.3f}s before the check-in was due"
    assert first <= due + 3, f"concern {first - due:.3f}s after the check-in was due"
    assert escalations(system) == [] and not system.twilio.messages_to(DUTY)
    await eventually(
        lambda: (
            {tuple(m.rcpt_tos) for m in system.smtp.messages}
            >= {("mgr@oak.example",), ("sw@lbh.example",)}
        ),
        10,
        "concern emails",
    )
    listed = await alerts(system)
    assert [(a["kind"], a["status"]) for a in listed] == [("missed_checkin", "open")]
    assert [a["kind"] for a in await alerts(system, "oak-staff1")] == ["missed_checkin"]

    # Unanswered for 2 s more: the duty manager.
    await eventually(lambda: escalations(system), 10, "escalation to the duty manager")
    escalated = escalations(system)
    assert [m.to for m in escalated] == [DUTY]
    assert escalated[0].received_at >= due + ESCALATE
    assert escalated[0].received_at <= due + ESCALATE + 3
    await eventually(
        lambda: ("duty@lbh.example",) in {tuple(m.rcpt_tos) for m in system.smtp.messages},
        10,
        "escalation email",
    )

    # A check-in by Oak House closes the concern; everyone told hears so.
    next_due = await record_checkin(system)
    await eventually(
        lambda: {m.to for m in closed(system)} >= FIRST | {DUTY}, 10, "CLOSED messages"
    )
    async with system.client("lbh-dm1") as la:
        detail = (await la.get(f"/alerts/{listed[0]['alert_id']}")).json()
    assert detail["status"] == "resolved"
    assert Counter(m.to for m in closed(system)) == Counter(dict.fromkeys(FIRST | {DUTY}, 1))

    # It fired once: one concern per contact, one escalation, until the next check-in is due.
    await sleep_until(next_due - 0.3)
    assert Counter(m.to for m in concerns(system)) == Counter(dict.fromkeys(FIRST, 1))
    assert len(escalations(system)) == 1
    assert [a["kind"] for a in await alerts(system)] == ["missed_checkin"]


async def test_checkin_before_the_deadline_postpones_the_concern(start_system):
    system = await start_system(watchers=WATCHERS)
    due = await place_with_checkins(system)

    await sleep_until(due - GRACE)  # 3 s after placement, 1 s before the concern
    next_due = await record_checkin(system)
    assert next_due > due + 2

    # Nothing at the original deadline, nor until the new one.
    await sleep_until(next_due - 0.3)
    assert concerns(system) == []
    assert await alerts(system) == []

    # With no further check-in, the concern comes at the new deadline, once.
    await eventually(lambda: {m.to for m in concerns(system)} >= FIRST, 10, "postponed concern")
    first = min(m.received_at for m in concerns(system))
    assert next_due <= first <= next_due + 3
    await asyncio.sleep(0.5)
    assert Counter(m.to for m in concerns(system)) == Counter(dict.fromkeys(FIRST, 1))


async def snapshot(system: DevSystem) -> tuple:
    conn = await asyncpg.connect(system.database_url)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM events"),
            await conn.fetchval("SELECT count(*) FROM outbox"),
            await conn.fetchval("SELECT last_checkin_at FROM children WHERE child_id = $1", CHILD),
            [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT id, kind, due_at, status FROM watch_timers ORDER BY id"
                )
            ],
        )
    finally:
        await conn.close()


async def test_checkin_refused_for_an_unknown_placement_or_another_home(start_system):
    system = await start_system(watchers=WATCHERS)
    due = await place_with_checkins(system)

    async def armed() -> bool:
        timers = (await snapshot(system))[3]
        return any(kind == "checkin" and status == "pending" for _, kind, _, status in timers)

    await eventually(armed, 5, "the check-in clock to start")
    before = await snapshot(system)

    refusals = [
        ("oak-staff1", checkin("LBH-2026-0042-P9"), "LBH-2026-0042-P9"),
        ("lbh-dm1", checkin("P-UNKNOWN"), "P-UNKNOWN is not this child's current placement"),
        ("elm-staff1", checkin(), "is yours to report on"),
        ("oak-staff1", checkin(child_id="LBH-2026-9999"), "is yours to report on"),
    ]
    for user, body, says in refusals:
        async with system.client(user) as c:
            r = await c.post("/events", json=body)
        assert r.status_code == 403, (user, r.status_code, r.text)
        assert says in r.json()["detail"], (user, r.json())
        assert await snapshot(system) == before, f"{user}'s refused check-in changed something"

    # The refused check-ins postponed nothing: the concern comes at the original deadline.
    await eventually(lambda: {m.to for m in concerns(system)} >= FIRST, 10, "welfare concern")
    first = min(m.received_at for m in concerns(system))
    assert due <= first <= due + 3
