"""The risk watchers (DESIGN.md rule 2): risk signals raise the child's risk, contact from a
trafficker alerts the police and the duty manager at once, and three missing episodes make the
child high risk and prompt a strategy meeting, once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, event, placement
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import CHILD, report_absence

DUTY, SOCIAL_WORKER, CONTROL_ROOM = "+447700900001", "+447700900003", "+447700900010"


async def place_medium_risk_child(system: DevSystem) -> None:
    """A medium-risk child identified by Hackney and placed at Oak House."""
    placed = {**placement(CHILD), "risk": {"level": "medium", "factors": ["recently identified"]}}
    async with system.client("lbh-dm1") as la:
        r = await la.post(
            "/events", json=event("child.identified", CHILD, {**IDENTIFIED, "risk_level": "medium"})
        )
        assert r.status_code == 202, r.text
        r = await la.post("/events", json=event("placement.started", CHILD, placed))
        assert r.status_code == 202, r.text


async def signal(system: DevSystem, kind: str, detail: str) -> float:
    """Oak House staff log a risk signal now; return when."""
    at = time.time()
    async with system.client("oak-staff1") as home:
        r = await home.post(
            "/events", json=event("risk.signal", CHILD, {"kind": kind, "detail": detail})
        )
        assert r.status_code == 202, r.text
    return at


async def alerts(system: DevSystem, user: str = "lbh-dm1") -> list[dict]:
    """Every alert the user may see, oldest first."""
    async with system.client(user) as c:
        r = await c.get("/alerts", params={"status": "all"})
        assert r.status_code == 200, r.text
        return sorted(r.json(), key=lambda a: a["opened_at"])


async def alerts_of_kind(system: DevSystem, kind: str, n: int) -> list[dict]:
    """The `kind` alerts, once there are at least `n` of them."""

    async def found() -> list[dict]:
        of_kind = [a for a in await alerts(system) if a["kind"] == kind]
        assert len(of_kind) >= n, of_kind
        return of_kind

    return await eventually(found, 10, f"{n} {kind} alert(s)", every=0.1)


async def located(system: DevSystem) -> None:
    """The child is back at Oak House; wait until the missing alert is resolved."""
    async with system.client("oak-staff1") as home:
        body = {
            "located_at": datetime.now(UTC).isoformat(),
            "location": "Oak House",
            "status": "returned",
        }
        r = await home.post("/events", json=event("child.located", CHILD, body))
        assert r.status_code == 202, r.text

    async def all_resolved() -> bool:
        missing = [a for a in await alerts(system) if a["kind"] == "missing"]
        assert all(a["status"] == "resolved" for a in missing), missing
        return True

    await eventually(all_resolved, 10, "the missing alert to be resolved", every=0.1)


async def child_risk(system: DevSystem) -> str:
    """The child's risk level as GET /children/{id} shows it."""
    async with system.client("lbh-dm1") as la:
        r = await la.get(f"/children/{CHILD}")
    assert r.status_code == 200, r.text
    return r.json()["risk_level"]


async def test_unknown_visitor_raises_a_medium_risk_child_to_high(start_system):
    system = await start_system()
    await place_medium_risk_child(system)
    assert await child_risk(system) == "medium"
    await signal(system, "unknown_visitor", "adult in a car outside the home, asked for the child")

    async def high() -> bool:
        return await child_risk(system) == "high"

    await eventually(high, 10, "the child's risk to become high", every=0.1)

    # A risk signal other than trafficker contact alerts nobody by itself.
    await asyncio.sleep(1)
    assert system.twilio.messages == [] and system.smtp.messages == []
    assert await alerts(system) == []

    # The next absence is handled as high risk.
    await report_absence(system)
    [missing] = await alerts_of_kind(system, "missing", 1)
    assert missing["risk_level"] == "high"
    await eventually(lambda: len(system.twilio.messages) >= 3, 10, "first wave")
    assert all("HIGH risk" in m.body for m in system.twilio.messages)


async def test_trafficker_contact_alerts_police_and_duty_manager_at_once(start_system):
    system = await start_system()
    await place_medium_risk_child(system)
    at = await signal(system, "trafficker_contact", "a man who said he was her uncle phoned")

    phones = {CONTROL_ROOM, DUTY}

    def risk_sms() -> list:
        return [m for m in system.twilio.messages if "RISK ALERT" in m.body]

    await eventually(lambda: {m.to for m in risk_sms()} >= phones, 10, "risk alert SMS")
    first = min(m.received_at for m in risk_sms())
    assert first - at < 2.0, f"the risk alert took {first - at:.3f}s"
    await eventually(
        lambda: (
            {tuple(m.rcpt_tos) for m in system.smtp.messages}
            >= {("cr@mps.example",), ("duty@lbh.example",)}
        ),
        10,
        "risk alert emails",
    )
    [alert] = await alerts_of_kind(system, "risk_signal", 1)
    assert alert["risk_level"] == "high"
    for sms in risk_sms():
        assert CHILD in sms.body and "trafficker contact" in sms.body and "HIGH" in sms.body
        assert "uncle" not in sms.body  # the detail goes by email only
        assert len(sms.body) <= 320

    # Once, to those two only.
    await asyncio.sleep(1.5)
    assert Counter(m.to for m in system.twilio.messages) == Counter(dict.fromkeys(phones, 1))
    assert sorted(tuple(m.rcpt_tos) for m in system.smtp.messages) == [
        ("cr@mps.example",),
        ("duty@lbh.example",),
    ]
    assert [a["kind"] for a in await alerts(system)] == ["risk_signal"]
    assert [a["kind"] for a in await alerts(system, "mps-cr1")] == ["risk_signal"]


async def test_a_later_trafficker_contact_alerts_again(start_system):
    system = await start_system()
    await place_medium_risk_child(system)
    phones = {CONTROL_ROOM, DUTY}

    def risk_sms() -> list:
        return [m for m in system.twilio.messages if "RISK ALERT" in m.body]

    await signal(system, "trafficker_contact", "a man who said he was her uncle phoned")
    await eventually(lambda: {m.to for m in risk_sms()} >= phones, 10, "risk alert SMS")
    [alert] = await alerts_of_kind(system, "risk_signal", 1)

    # The police act on it; later the trafficker makes contact again: that is news, and the
    # police and the duty manager are told again, at once.
    async with system.client("mps-cr1") as police:
        r = await police.post(f"/alerts/{alert['alert_id']}/ack")
        assert r.status_code == 200, r.text
    again = await signal(system, "trafficker_contact", "the same man waited at the school gate")
    await eventually(
        lambda: {m.to for m in risk_sms() if m.received_at >= again} >= phones,
        10,
        "a risk alert for the second trafficker contact",
    )
    assert min(m.received_at for m in risk_sms() if m.received_at >= again) - again < 2.0

    # One message each for the new contact; the earlier alert is closed, the new one is live.
    await asyncio.sleep(1.5)
    later = [m for m in risk_sms() if m.received_at >= again]
    assert Counter(m.to for m in later) == Counter(dict.fromkeys(phones, 1))
    assert all("RISK ALERT" in m.body for m in later)
    risk_alerts = await alerts_of_kind(system, "risk_signal", 2)
    assert [(a["alert_id"] == alert["alert_id"], a["status"]) for a in risk_alerts] == [
        (True, "resolved"),
        (False, "open"),
    ]


async def test_three_missing_episodes_make_the_child_high_and_prompt_one_strategy_meeting(
    start_system,
):
    system = await start_system(watchers={"episodes_window": "90d"})
    await place_medium_risk_child(system)

    def prompt() -> list:
        return [m for m in system.twilio.messages if "STRATEGY MEETING NEEDED" in m.body]

    for episode in (1, 2):
        await report_absence(system)
        await alerts_of_kind(system, "missing", episode)
        await located(system)
    assert [a["risk_level"] for a in await alerts(system)] == ["medium", "medium"]
    assert prompt() == []

    third_at = time.time()
    await report_absence(system)
    await eventually(
        lambda: {m.to for m in prompt()} >= {DUTY, SOCIAL_WORKER}, 10, "strategy prompt"
    )
    assert min(m.received_at for m in prompt()) - third_at < 2.0
    [meeting] = await alerts_of_kind(system, "strategy_meeting", 1)
    assert meeting["risk_level"] == "high"
    missing = await alerts_of_kind(system, "missing", 3)
    assert [a["risk_level"] for a in missing] == ["medium", "medium", "high"]
    assert await child_risk(system) == "high"
    for sms in prompt():
        assert CHILD in sms.body and "3 times in 90 days" in sms.body
    await eventually(
        lambda: sum("STRATEGY MEETING NEEDED" in m.subject for m in system.smtp.messages) >= 2,
        10,
        "strategy prompt emails",
    )
    await located(system)

    # A fourth episode is handled as high risk, and does not prompt again.
    await report_absence(system)
    missing = await alerts_of_kind(system, "missing", 4)
    assert missing[-1]["risk_level"] == "high"
    await asyncio.sleep(1.5)
    assert Counter(m.to for m in prompt()) == Counter({DUTY: 1, SOCIAL_WORKER: 1})
    mails = [m for m in system.smtp.messages if "STRATEGY MEETING NEEDED" in m.subject]
    assert sorted(tuple(m.rcpt_tos) for m in mails) == [("duty@lbh.example",), ("sw@lbh.example",)]
    assert [a["kind"] for a in await alerts(system)].count("strategy_meeting") == 1


async def test_a_new_window_of_three_episodes_prompts_a_strategy_meeting_again(start_system):
    window = 8.0
    system = await start_system(watchers={"episodes_window": f"{window:.0f}s"})
    await place_medium_risk_child(system)

    def prompt() -> list:
        return [m for m in system.twilio.messages if "STRATEGY MEETING NEEDED" in m.body]

    async def episode(n: int) -> None:
        await report_absence(system)
        await alerts_of_kind(system, "missing", n)
        await located(system)

    for n in (1, 2, 3):
        await episode(n)
    await eventually(lambda: {m.to for m in prompt()} >= {DUTY, SOCIAL_WORKER}, 10, "first prompt")
    first_prompt = time.time()

    # Once the window has passed, three more episodes within a new window prompt again.
    await asyncio.sleep(max(0.0, first_prompt + window + 0.5 - time.time()))
    for n in (4, 5, 6):
        await episode(n)
    await eventually(
        lambda: Counter(m.to for m in prompt()) == Counter({DUTY: 2, SOCIAL_WORKER: 2}),
        10,
        "a second strategy meeting prompt in a new window",
    )
