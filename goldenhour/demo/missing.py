"""Act 1, acceptance scenario 1: a high-risk child goes missing from placement.

Each act waits for what the scenario expects to happen next, narrates it and notes what the
summary and the final checks need in the `Run`; a failed expectation raises ExpectationFailed.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from datetime import UTC, datetime
from xml.etree import ElementTree

import httpx

from goldenhour.demo.feed import ProviderFeed
from goldenhour.demo.narration import WIDTH
from goldenhour.demo.oncall import read_rotas
from goldenhour.demo.outcome import ExpectationFailed, Run, expect
from goldenhour.demo.people import (
    ACKER,
    CHILD,
    FIRST_WAVE,
    NATIONAL,
    NEIGHBOUR,
    PLACE,
    ROLE_WORDS,
    ROTAS,
    SCALE,
    SECOND_WAVE,
)
from goldenhour.dev.devsystem import TWILIO_FROM, DevSystem
from goldenhour.dev.london import IDENTIFIED, event, placement
from goldenhour.dev.waiting import eventually

MARGIN = 5.0  # how long past its due time a step may take before the demo gives up
SETTLED = {"delivered", "failed", "cancelled"}


async def post_event(client: httpx.AsyncClient, kind: str, data: dict) -> None:
    r = await client.post("/events", json=event(kind, CHILD, data))
    if r.status_code != 202:
        raise ExpectationFailed(f"POST /events {kind} answered {r.status_code}: {r.text[:300]}")


async def fetch_alert(system: DevSystem, alert_id: str) -> dict:
    async with system.client("lbh-dm1") as la:
        r = await la.get(f"/alerts/{alert_id}")
        if r.status_code != 200:
            raise ExpectationFailed(f"GET /alerts/{alert_id} answered {r.status_code}: {r.text}")
        return r.json()


async def find_alert(system: DevSystem, deadline: float) -> str:
    async with system.client("lbh-dm1") as la:

        async def first_alert() -> str | None:
            r = await la.get("/alerts", params={"status": "all"})
            return str(r.json()[0]["alert_id"]) if r.status_code == 200 and r.json() else None

        return await expect(
            first_alert,
            deadline,
            "the absence raised no alert visible to the Hackney duty manager",
            every=0.05,
        )


async def prologue(system: DevSystem, feed: ProviderFeed) -> None:
    """The child identified and placed; Islington subscribes to Hackney's shared alerts."""
    async with system.client("lbh-dm1") as la:
        await post_event(la, "child.identified", IDENTIFIED)
        feed.say(
            f"Hackney duty manager (lbh-dm1) records {CHILD} identified as a presumed victim of "
            "trafficking: unaccompanied, criminal exploitation, HIGH risk"
        )
        await post_event(la, "placement.started", placement(CHILD))
        feed.say(f"{CHILD} placed at Oak House (safe placement recorded inside the golden hour)")

    # The 30-minute step shares the alert with neighbouring boroughs' subscribers.
    async with system.client("lbi-dm1") as lbi:
        r = await lbi.post(
            "/subscriptions",
            json={
                "source_authorities": ["LBH"],
                "min_risk": "medium",
                "deliver": {"contacts": [NEIGHBOUR], "channels": ["sms", "email"]},
            },
        )
    if r.status_code != 201:
        raise ExpectationFailed(f"POST /subscriptions answered {r.status_code}: {r.text[:300]}")
    feed.say("Islington's duty manager (lbi-dm1) subscribes lbi-duty to Hackney's shared alerts")

    # Who a step naming a role pages: whoever of the role is on call by the organisation's rota.
    for (user, rota_id, on, off), rota in zip(ROTAS, await read_rotas(system), strict=True):
        role = ROLE_WORDS.get(rota["role"], rota["role"])
        feed.say(
            f"Rota {rota_id} of {feed.people.org_of(on)} (GET /api/v1/rotas as {user}): {on} "
            f"on call as {role} this week, {off} off duty; fallback {rota['fallback']}"
        )


async def report_absence(system: DevSystem, run: Run, feed: ProviderFeed) -> float:
    """The home reports the child missing; the monotonic time of the report."""
    await asyncio.sleep(0.3)
    feed.say()
    run.reported_at = time.time()
    async with system.client("oak-staff1") as home:
        await post_event(
            home,
            "absence.reported",
            {
                "last_seen_at": datetime.fromtimestamp(run.reported_at, UTC).isoformat(),
                "last_seen_location": PLACE,
                "circumstances": "Did not return from college; phone switched off",
                "clothing": "black puffer jacket, grey joggers",
                "placement_id": f"{CHILD}-P1",
            },
        )
    feed.say(
        f"Oak House (oak-staff1) reports {CHILD} missing (last seen at {PLACE})", run.reported_at
    )
    feed.say("The golden hour starts now, anchored at the time last seen.")
    return time.monotonic()


async def first_wave(system: DevSystem, run: Run, feed: ProviderFeed, t_report: float) -> None:
    """Police, duty manager and home manager told by SMS and email; the alert found."""
    await expect(
        lambda: set(FIRST_WAVE) <= feed.sms_to(),
        t_report + MARGIN,
        lambda: (
            f"no first-wave SMS to all of {', '.join(FIRST_WAVE)} within {MARGIN:.0f} s of "
            f"the report (SMS so far to: {feed.sms_so_far()})"
        ),
    )
    first = min(m.received_at for m in system.twilio.messages)
    run.first_sms_ms = (first - run.reported_at) * 1000
    await expect(
        lambda: set(FIRST_WAVE) <= feed.mail_to(),
        t_report + MARGIN,
        f"no first-wave email to all of {', '.join(FIRST_WAVE)} within {MARGIN:.0f} s",
    )
    alerts = [m for m in system.twilio.messages if "GOLDEN HOUR ALERT" in m.body]
    if not alerts or "ACK " not in alerts[0].body:
        raise ExpectationFailed("the first-wave SMS carries no 'Reply ACK <code>'")
    run.ack_code = alerts[0].body.rsplit("ACK ", 1)[1].split()[0]
    feed.say(
        f"First SMS {run.first_sms_ms:.0f} ms after the report. It carries the case reference, "
        "risk, time and place last seen, never a name:"
    )
    for text in textwrap.wrap(f'"{alerts[0].body}"', WIDTH - 18, break_on_hyphens=False):
        print(" " * 16 + text, flush=True)
    paged = feed.sms_to()
    roles = feed.people.contact_role
    on = " and ".join(f"{ROLE_WORDS.get(roles[o], o)} {o}" for _, _, o, _ in ROTAS)
    off = [o for _, _, _, o in ROTAS]
    wrongly = [o for o in off if o in paged]
    feed.say(
        f"Paged by the rotas: {on}, the ones on call; "
        + (
            f"{' and '.join(off)}, off duty, are not."
            if not wrongly
            else f"yet {' and '.join(wrongly)}, off duty, were paged too."
        )
    )
    run.alert_id = await find_alert(system, t_report + MARGIN)


async def second_wave(feed: ProviderFeed, t_report: float) -> None:
    """Nobody acknowledges: the 15-minute step reaches the missing persons unit and the head."""
    feed.say()
    feed.say(
        "Nobody acknowledges. Reminders go every 10 policy minutes (2 s); the 15-minute step "
        f"(at +{15 * SCALE:.1f} s) tells the missing persons unit and the head of service."
    )
    await expect(
        lambda: set(SECOND_WAVE) <= feed.sms_to(),
        t_report + 15 * SCALE + MARGIN,
        lambda: (
            f"the 15-minute step did not reach all of {', '.join(SECOND_WAVE)} by "
            f"+{15 * SCALE + MARGIN:.0f}s (SMS so far to: {feed.sms_so_far()})"
        ),
    )


async def acknowledge(system: DevSystem, run: Run, feed: ProviderFeed) -> None:
    """The duty manager replies `ACK <code>` by SMS and is answered."""
    await asyncio.sleep(0.1)
    feed.say()
    reply_body = f"ACK {run.ack_code}"
    phone = feed.people.phone_of[ACKER]
    feed.say(f"Hackney duty manager ({ACKER}, {phone}) replies by SMS: {reply_body}")
    status, reply = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound", phone, TWILIO_FROM, reply_body
    )
    run.ack_sent_at = time.time()
    answer = twiml_text(reply)
    if status != 200 or "acknowledged" not in answer:
        raise ExpectationFailed(f"the ACK reply was answered {status}: {answer[:200]}")
    feed.say(f'Golden Hour answers the duty manager: "{answer}"')
    feed.say(
        "Reminders stop; the 45-minute 'unless acknowledged' step will be skipped. The 30-minute "
        "shared alert and the 60-minute national step still go."
    )


async def golden_hour_expires(feed: ProviderFeed, t_report: float) -> None:
    """The 60-minute step tells the national unit; the shared alert reached Islington."""
    feed.say()
    await expect(
        lambda: NATIONAL in feed.sms_to(),
        t_report + 60 * SCALE + MARGIN,
        f"the 60-minute step did not reach the national missing persons unit by "
        f"+{60 * SCALE + MARGIN:.0f}s",
    )
    feed.say("Golden hour expired: the national missing persons unit has been told.")
    await expect(
        lambda: NATIONAL in feed.mail_to(), time.monotonic() + MARGIN, "no email to ukmpu in time"
    )
    await expect(
        lambda: NEIGHBOUR in feed.sms_to() | feed.mail_to(),
        time.monotonic() + MARGIN,
        "the 30-minute shared alert did not reach Islington's subscriber (lbi-duty)",
    )


async def located(system: DevSystem, run: Run, feed: ProviderFeed) -> None:
    """The child returns; everyone told is stood down."""
    alert = await fetch_alert(system, run.alert_id)
    # The child's own agencies; a neighbour's subscriber gets the shared cancellation instead.
    own = [n for n in alert["notifications"] if not n["step_key"].startswith("share")]
    told = {n["contact_id"] for n in own}
    told_sms = {n["contact_id"] for n in own if n["channel"] == "sms"}
    told_email = {n["contact_id"] for n in own if n["channel"] == "email"}
    await asyncio.sleep(0.3)
    feed.say()
    at = time.time()
    async with system.client("oak-staff1") as home:
        await post_event(
            home,
            "child.located",
            {
                "located_at": datetime.fromtimestamp(at, UTC).isoformat(),
                "location": "Oak House",
                "status": "returned",
            },
        )
    feed.say(f"{CHILD} walks back into Oak House; staff record the child located (returned)", at)
    await expect(
        lambda: sum("STAND DOWN" in m.body for m in system.twilio.messages) >= len(told_sms),
        time.monotonic() + MARGIN,
        f"stand-down SMS did not reach all {len(told_sms)} contacts told",
    )
    await expect(
        lambda: sum("STAND DOWN" in m.subject for m in system.smtp.messages) >= len(told_email),
        time.monotonic() + MARGIN,
        f"stand-down email did not reach all {len(told_email)} contacts told",
    )
    stand_down = next(m.body for m in system.twilio.messages if "STAND DOWN" in m.body)
    if "return home interview" in stand_down.lower():
        feed.say("Everyone told is stood down; a return home interview is now due within 72 hours.")

    async def settled() -> bool:
        alert = await fetch_alert(system, run.alert_id)
        stood = {n["contact_id"] for n in alert["notifications"] if n["step_key"] == "stand_down"}
        landed = all(
            n["status"] in SETTLED or (n["channel"] == "email" and n["status"] == "sent")
            for n in alert["notifications"]
        )
        return alert["status"] == "resolved" and stood >= told and landed

    # Let the delivery receipts land, so the timeline shows where each message ended up; the
    # final checks judge whatever has not landed by then.
    try:
        await eventually(settled, MARGIN, "the delivery receipts", every=0.1)
    except AssertionError:
        pass
    await asyncio.sleep(0.2)  # any message arriving late would show in the narration


async def scenario(system: DevSystem, run: Run, feed: ProviderFeed) -> None:
    """Scenario 1, act by act."""
    await prologue(system, feed)
    t_report = await report_absence(system, run, feed)
    await first_wave(system, run, feed, t_report)
    await second_wave(feed, t_report)
    await acknowledge(system, run, feed)
    await golden_hour_expires(feed, t_report)
    await located(system, run, feed)


def twiml_text(xml: str) -> str:
    try:
        return " ".join(t.strip() for t in ElementTree.fromstring(xml).itertext() if t.strip())
    except ElementTree.ParseError:
        return xml.strip()
