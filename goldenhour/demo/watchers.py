"""The demo's third act: acting before a child goes missing.

A child identified by the police has no safe placement when the identification golden hour runs
out; the duty manager and the police control room are alerted. Once placed, the child's check-in
falls overdue and a welfare concern goes to the care home manager and the social worker, until a
check-in closes it. Durations are scaled so each clock runs out in seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from goldenhour.demo.narration import heading, say
from goldenhour.demo.outcome import ExpectationFailed, Run, expect
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import CONTACTS, ROTA_CONTACTS, event, identified_as, placement

CHILD = "LBH-2026-0051"
WATCHERS = {
    "placement_within": "3s",  # the identification golden hour: 60 minutes, here 3 s
    "checkin_interval_unit": "1s",  # one check-in "minute" is a second
    "checkin_grace": "1s",
    "concern_escalate_after": "3s",
}
CHECKIN_EVERY = 3  # "minutes" (seconds here)
CONTACT_BY_PHONE = {
    c["phone"]: c["id"]
    for contacts in (CONTACTS, ROTA_CONTACTS)
    for people in contacts.values()
    for c in people
}


async def _post(system: DevSystem, user: str, kind: str, data: dict) -> None:
    async with system.client(user) as c:
        r = await c.post("/events", json=event(kind, CHILD, data))
    if r.status_code != 202:
        raise ExpectationFailed(f"POST /events {kind} answered {r.status_code}: {r.text[:300]}")


async def _sms(system: DevSystem, words: str, phones: set[str], timeout: float) -> list:
    """Wait for an SMS about this child containing `words` to each of `phones`; print them."""

    def found() -> list:
        sent = [
            m
            for m in system.twilio.messages
            if CHILD in m.body and words in m.body and m.to in phones
        ]
        return sent if {m.to for m in sent} >= phones else []

    sent = await expect(
        found,
        time.monotonic() + timeout,
        f"no '{words}' SMS about {CHILD} reached {sorted(phones)}",
        every=0.05,
    )
    for m in sorted(sent, key=lambda m: m.received_at):
        who = CONTACT_BY_PHONE.get(m.to, m.to)
        say(f"SMS    -> {who:<9} {m.body}", at=m.received_at, clipped=True)
    return sent


async def _alerts(system: DevSystem) -> list[dict]:
    async with system.client("lbh-dm1") as la:
        r = await la.get("/alerts", params={"status": "all"})
    return [a for a in r.json() if a["child_id"] == CHILD]


async def before_they_go_missing(system: DevSystem, run: Run) -> None:
    """Act 3: the identification golden hour and a missed check-in, with their checks."""
    heading("ACT 3 - before they go missing: the identification golden hour and a check-in")
    duty, police = "+447700900001", "+447700900010"
    manager, social = "+447700900020", "+447700900003"
    identified = datetime.now(UTC)
    await _post(system, "mps-cr1", "child.identified", identified_as("LBH0051", risk_level="high"))
    say(
        f"Police (mps-cr1) identify {CHILD} as a presumed victim of trafficking. A safe placement "
        "must be recorded within the golden hour (60 minutes; 3 s here)."
    )
    first = await _sms(system, "NO SAFE PLACEMENT", {duty, police}, 10)
    late = min(m.received_at for m in first) - identified.timestamp()
    say(
        f"No placement in time: duty manager and police control room alerted {late:.1f} s after "
        "identification."
    )

    await _post(
        system,
        "lbh-dm1",
        "placement.started",
        {**placement(CHILD), "checkin_interval_minutes": CHECKIN_EVERY},
    )
    say(
        f"Hackney places {CHILD} at Oak House, with a check-in expected every {CHECKIN_EVERY} "
        "minutes (seconds here); the identification alert is closed."
    )
    await _sms(system, "CLOSED", {duty, police}, 5)

    concern = await _sms(system, "WELFARE CONCERN", {manager, social}, 10)
    say(
        "No check-in recorded in time: a welfare concern goes to the care home manager and the "
        "social worker, asking for a check-in or an absence report."
    )
    seen_at = max(m.received_at for m in concern)
    await _post(
        system,
        "oak-staff1",
        "checkin.recorded",
        {"placement_id": f"{CHILD}-P1", "seen_at": datetime.now(UTC).isoformat()},
    )
    say("Oak House (oak-staff1) records a check-in: the child is safe; the concern is closed.")
    await _sms(system, "CLOSED", {manager, social}, 5)

    alerts = {a["kind"]: a for a in await _alerts(system)}
    for kind in ("identification", "missed_checkin"):
        a = alerts.get(kind)
        say(
            f"  {kind:<15} {a['status'] if a else 'MISSING':<9} {(a or {}).get('resolution') or ''}"
        )
    told = [m for m in system.twilio.messages if CHILD in m.body]
    per_phone = {
        p: sum(1 for m in told if m.to == p and "NO SAFE PLACEMENT" in m.body)
        for p in (duty, police)
    }
    run.check(
        "identification alert once to duty manager and police",
        set(per_phone.values()) == {1},
        f"{per_phone}",
    )
    run.check(
        "welfare concern to care home manager and social worker, closed by a check-in",
        alerts.get("missed_checkin", {}).get("status") == "resolved",
        f"concern raised {seen_at - identified.timestamp():.1f} s after identification",
    )
    run.check(
        "identification alert closed by the placement",
        alerts.get("identification", {}).get("status") == "resolved",
        f"{alerts.get('identification', {}).get('resolution')}",
    )
