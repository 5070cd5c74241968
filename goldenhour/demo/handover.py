"""The demo's second act: a handover of the duty manager's rota during an open alert.

A child is reported missing; the first step pages Hackney's duty manager on call by the rota,
lbh-duty, and not lbh-edt-2, who is off duty. Before anyone acknowledges, lbh-duty is called to
a strategy meeting: the duty manager (lbh-dm1) puts lbh-edt-2 on call in lbh-duty's place from
a second later (`POST /api/v1/rotas/{id}/overrides`). The rota watch briefs lbh-edt-2 with one
SMS and one email on the open alert they now hold; the next reminder reaches both; lbh-edt-2
replies `ACK <code>` with the briefing's code; the child is found and both are stood down. The
override is withdrawn at the end, whatever happened, so the next act pages lbh-duty again.

The streams worker looks for handovers every `GOLDENHOUR_ROTA_WATCH_S` (0.5 s here, set by
run.py); the act lasts some 10 seconds.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from goldenhour.demo.feed import ProviderFeed
from goldenhour.demo.missing import twiml_text
from goldenhour.demo.narration import TZ, WIDTH, clock, heading
from goldenhour.demo.oncall import on_call
from goldenhour.demo.outcome import ExpectationFailed, Run, expect
from goldenhour.demo.people import SCALE, Directory, policy_minutes
from goldenhour.dev.devsystem import TWILIO_FROM, DevSystem
from goldenhour.dev.london import event, identified_as, placement

CHILD = "LBH-2026-0063"
PLACE = "Dalston Junction station"
CIRCUMSTANCES = "Left for the shop at 16:00 and did not come back"
CLOTHING = "green hoodie, blue jeans"
ROTA = "lbh-duty-rota"
MANAGER = "lbh-dm1"  # Hackney's duty manager user, who changes the rota
OUTGOING = "lbh-duty"  # on call by the rota, called away
INCOMING = "lbh-edt-2"  # off duty by the rota, on call from the handover
REASON = "lbh-duty called to a strategy meeting"
MARGIN = 5.0  # how long past its due time something may take before the demo gives up
SMS_MAX = 320  # two SMS segments: what one briefing may take


def briefing_pattern(last_seen: datetime) -> re.Pattern[str]:
    """The whole briefing SMS the one coming on call should get: the case reference, the time
    last seen and the code, and nothing else (no name, no place, nothing a reporter typed)."""
    since = last_seen.astimezone(TZ).strftime("%H:%M %d/%m")
    return re.compile(
        r"GOLDEN HOUR HANDOVER: you are on call now as LBH duty manager\. 1 open, not "
        rf"acknowledged: {re.escape(CHILD)} missing since {re.escape(since)} ACK (\d+)\. "
        # The dispatcher's marker of the message, unique to it (notifiers/sms.py).
        r"Reply ACK and the code when acting\. Ref [A-Z2-7]{6}"
    )


class Act:
    """What the act observed, for its checks."""

    def __init__(self, system: DevSystem, people: Directory, run: Run) -> None:
        self.system = system
        self.people = people
        self.run = run
        self.sms_from = len(system.twilio.messages)
        self.mail_from = len(system.smtp.messages)
        self.reported_at = 0.0
        self.handover_at = 0.0
        self.briefing = ""
        self.code = ""
        self.reminder_round = ""
        self.alert: dict = {}
        # The override's withdrawal: held or not, and what was seen; None until tried.
        self.withdrawn: tuple[bool, str] | None = None

    def sms(self, who: str, words: str) -> list:
        """The act's SMS about the child to `who` containing `words`, oldest first."""
        phone = self.people.phone_of[who]
        return [
            m
            for m in self.system.twilio.messages[self.sms_from :]
            if m.to == phone and CHILD in m.body and words in m.body
        ]

    def mail(self, who: str, words: str) -> list:
        address = next(a for a, c in self.people.by_email.items() if c == who)
        return [
            m
            for m in self.system.smtp.messages[self.mail_from :]
            if address in (r.lower() for r in m.rcpt_tos) and words in m.subject
        ]


async def _post(system: DevSystem, user: str, kind: str, data: dict) -> None:
    async with system.client(user) as c:
        r = await c.post("/events", json=event(kind, CHILD, data))
    if r.status_code != 202:
        raise ExpectationFailed(f"POST /events {kind} answered {r.status_code}: {r.text[:300]}")


async def _alert(system: DevSystem) -> dict | None:
    """The child's missing alert as Hackney's duty manager reads it, if there is one yet."""
    async with system.client(MANAGER) as c:
        r = await c.get("/alerts", params={"status": "all"})
        if r.status_code != 200:
            return None
        found = [a for a in r.json() if a["child_id"] == CHILD and a["kind"] == "missing"]
        if not found:
            return None
        r = await c.get(f"/alerts/{found[0]['alert_id']}")
    return r.json() if r.status_code == 200 else None


async def _paged(act: Act, feed: ProviderFeed) -> None:
    """The child placed, then reported missing: the one on call is paged, the one off is not."""
    await _post(act.system, MANAGER, "child.identified", identified_as("LBH0063"))
    # Check-ins far apart: no welfare concern comes into this act.
    await _post(
        act.system,
        MANAGER,
        "placement.started",
        {**placement(CHILD), "checkin_interval_minutes": 600},
    )
    feed.say(f"Hackney (lbh-dm1) records {CHILD} identified, HIGH risk, and placed at Oak House.")
    await asyncio.sleep(0.2)
    act.reported_at = time.time()
    await _post(
        act.system,
        "oak-staff1",
        "absence.reported",
        {
            "last_seen_at": datetime.fromtimestamp(act.reported_at, UTC).isoformat(),
            "last_seen_location": PLACE,
            "circumstances": CIRCUMSTANCES,
            "clothing": CLOTHING,
            "placement_id": f"{CHILD}-P1",
        },
    )
    feed.say(
        f"Oak House (oak-staff1) reports {CHILD} missing (last seen at {PLACE})", act.reported_at
    )
    await expect(
        lambda: act.sms(OUTGOING, "GOLDEN HOUR ALERT"),
        time.monotonic() + MARGIN,
        f"the first step did not page {OUTGOING}, the duty manager on call, within {MARGIN:.0f} s",
    )
    off = "not" if not act.sms(INCOMING, "") else "yet also"
    feed.say(
        f"The first step pages {OUTGOING}, Hackney's duty manager on call by the rota; "
        f"{INCOMING}, off duty, is {off} paged."
    )


async def _hand_over(act: Act, feed: ProviderFeed, client: httpx.AsyncClient) -> str:
    """Before anyone acknowledges, lbh-duty hands over to lbh-edt-2; the override's id."""
    start = datetime.now(UTC) + timedelta(seconds=1)
    body = {
        "action": "replace",
        "member": OUTGOING,
        "by": INCOMING,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "reason": REASON,
    }
    r = await client.post(f"/rotas/{ROTA}/overrides", json=body)
    if r.status_code != 201:
        raise ExpectationFailed(
            f"POST /rotas/{ROTA}/overrides answered {r.status_code}: {r.text[:300]}"
        )
    act.handover_at = start.timestamp()
    feed.say()
    feed.say(
        f"Before anyone acknowledges, {OUTGOING} is called to a strategy meeting. The duty "
        f"manager (lbh-dm1) hands over on the rota: POST /api/v1/rotas/{ROTA}/overrides, replace "
        f'{OUTGOING} by {INCOMING} from {clock(start)} for an hour, reason "{REASON}".'
    )
    return str(r.json()["change_id"])


async def _briefed(act: Act, feed: ProviderFeed) -> None:
    """The rota watch briefs the one coming on call: one SMS and one email."""
    due = act.handover_at - time.time()
    briefings = await expect(
        lambda: act.sms(INCOMING, "HANDOVER"),
        time.monotonic() + max(due, 0) + MARGIN,
        f"no handover briefing SMS reached {INCOMING} within {MARGIN:.0f} s of the handover",
    )
    act.briefing = briefings[0].body
    took = briefings[0].received_at - act.handover_at
    feed.say(
        f"{INCOMING} comes on call; the rota watch briefs them {took:.1f} s after the handover "
        "on the open alert they now hold. The SMS as received:"
    )
    for text in textwrap.wrap(f'"{act.briefing}"', WIDTH - 18, break_on_hyphens=False):
        print(" " * 16 + text, flush=True)
    found = briefing_pattern(datetime.fromtimestamp(act.reported_at, UTC)).fullmatch(act.briefing)
    act.code = found.group(1) if found else ""
    if not act.code:
        raise ExpectationFailed(f"the briefing is not worded as expected: {act.briefing!r}")
    await expect(
        lambda: act.mail(INCOMING, "handover"),
        time.monotonic() + MARGIN,
        f"no handover briefing email reached {INCOMING} within {MARGIN:.0f} s",
    )
    now = await on_call(act.system, MANAGER, ROTA)
    feed.say(
        f"GET /api/v1/rotas/{ROTA}/oncall: {', '.join(now['members']) or 'nobody'} on call "
        f"(by the {now['source']})."
    )
    if now["members"] != [INCOMING] or now["source"] != "override":
        raise ExpectationFailed(f"after the handover the rota says {now}")


async def _reminded(act: Act, feed: ProviderFeed) -> None:
    """A reminder round reaches both: the one gone off duty and the one come on."""
    policy = act.people.config["policies"]["high"]
    every = policy_minutes(policy["renotify_every"]) * SCALE
    last = act.reported_at + every * policy["renotify_max"]

    def both() -> str:
        rounds = {m.body.split(":", 1)[0] for m in act.sms(INCOMING, "REMINDER")}
        return next(
            (n for n in sorted(rounds) if any(m.body.startswith(n) for m in act.sms(OUTGOING, n))),
            "",
        )

    act.reminder_round = await expect(
        both,
        time.monotonic() + max(last - time.time(), 0) + MARGIN,
        f"no reminder reached both {OUTGOING} and {INCOMING}",
    )
    feed.say(
        f"{act.reminder_round} reaches both {OUTGOING}, gone off duty, and {INCOMING}, on call "
        "now: each holds the alert until someone acknowledges it."
    )


async def _acknowledged(act: Act, feed: ProviderFeed) -> None:
    """The one briefed replies `ACK <code>` with the briefing's code; the alert says who."""
    await asyncio.sleep(0.1)
    feed.say()
    reply_body = f"ACK {act.code}"
    phone = act.people.phone_of[INCOMING]
    feed.say(f"{INCOMING} ({phone}) replies by SMS with the briefing's code: {reply_body}")
    status, reply = await act.system.twilio.send_inbound(
        f"{act.system.api_url}/api/v1/webhooks/twilio/inbound", phone, TWILIO_FROM, reply_body
    )
    answer = twiml_text(reply)
    if status != 200 or "acknowledged" not in answer:
        raise ExpectationFailed(f"{INCOMING}'s ACK was answered {status}: {answer[:200]}")
    feed.say(f'Golden Hour answers {INCOMING}: "{answer}"')

    async def acked() -> dict | None:
        alert = await _alert(act.system)
        return alert if alert and alert["acknowledgements"] else None

    act.alert = await expect(
        acked, time.monotonic() + MARGIN, f"the alert of {CHILD} shows no acknowledgement"
    )
    who = [a.get("contact_id") or a.get("user_id") for a in act.alert["acknowledgements"]]
    feed.say(f"The alert's record (GET /api/v1/alerts/{{id}}): acknowledged by {', '.join(who)}.")


async def _stood_down(act: Act, feed: ProviderFeed) -> None:
    """The child is found; both duty managers are stood down."""
    await asyncio.sleep(0.2)
    feed.say()
    at = time.time()
    await _post(
        act.system,
        "oak-staff1",
        "child.located",
        {
            "located_at": datetime.fromtimestamp(at, UTC).isoformat(),
            "location": "Oak House",
            "status": "returned",
        },
    )
    feed.say(f"{CHILD} is found and brought back to Oak House; staff record the child located", at)
    await expect(
        lambda: act.sms(OUTGOING, "STAND DOWN") and act.sms(INCOMING, "STAND DOWN"),
        time.monotonic() + MARGIN,
        f"the stand-down did not reach both {OUTGOING} and {INCOMING}",
    )

    async def resolved() -> dict | None:
        alert = await _alert(act.system)
        return alert if alert and alert["status"] == "resolved" else None

    act.alert = await expect(
        resolved, time.monotonic() + MARGIN, f"the alert of {CHILD} is not resolved"
    )
    feed.say(f"Both are stood down: {OUTGOING} and {INCOMING}.")
    await asyncio.sleep(0.2)  # a message arriving late would show in the narration


async def _withdraw(
    act: Act, feed: ProviderFeed, client: httpx.AsyncClient, change_id: str
) -> None:
    """Withdraw the override; lbh-duty is on call again by the rota."""
    try:
        r = await client.delete(f"/rotas/{ROTA}/overrides/{change_id}")
        now = await on_call(act.system, MANAGER, ROTA) if r.status_code == 204 else None
    except (ExpectationFailed, httpx.HTTPError) as exc:  # a failed check: the demo exits 1
        act.withdrawn = (False, f"could not withdraw it: {exc}")
        return
    members = now["members"] if now else []
    feed.say(
        f"lbh-dm1 withdraws the override (DELETE /api/v1/rotas/{ROTA}/overrides/{{id}}: "
        f"{r.status_code}); on call now: {', '.join(members) or '?'}."
    )
    act.withdrawn = (
        r.status_code == 204 and members == [OUTGOING],
        f"DELETE answered {r.status_code}; on call now: {', '.join(members) or '?'}",
    )


def withdrawal_check(act: Act) -> None:
    if act.withdrawn is not None:
        act.run.check("the override withdrawn, the one on call by the rota back on", *act.withdrawn)


def checks(act: Act) -> None:
    """Note the act's expectations, held or not, in the run."""
    run = act.run
    alerts = {who: len(act.sms(who, "GOLDEN HOUR ALERT")) for who in (OUTGOING, INCOMING)}
    run.check(
        "the duty manager on call paged, the one off duty not",
        alerts[OUTGOING] == 1 and alerts[INCOMING] == 0,
        f"first-step SMS: {OUTGOING} {alerts[OUTGOING]}, {INCOMING} {alerts[INCOMING]}",
    )
    handovers = Counter(
        act.people.by_phone.get(m.to, m.to)
        for m in act.system.twilio.messages[act.sms_from :]
        if "HANDOVER" in m.body
    )
    mails = len(act.mail(INCOMING, "handover"))
    run.check(
        "the briefing once, to the one coming on call only",
        dict(handovers) == {INCOMING: 1} and mails == 1,
        f"SMS {dict(handovers) or 'none'}; email to {INCOMING} {mails}",
    )
    free_text = [w for w in (PLACE, CIRCUMSTANCES, CLOTHING) if w in act.briefing]
    worded = bool(
        briefing_pattern(datetime.fromtimestamp(act.reported_at, UTC)).fullmatch(act.briefing)
    )
    run.check(
        "the briefing fits 320 characters: case reference and code, no name",
        0 < len(act.briefing) <= SMS_MAX and CHILD in act.briefing and worded and not free_text,
        f"{len(act.briefing)} characters, {CHILD}, ACK {act.code or '?'}"
        + (f"; carries {free_text}" if free_text else "")
        + ("" if worded else "; not worded as expected"),
    )
    run.check(
        "a reminder reached both the one gone off and the one come on",
        bool(act.reminder_round),
        f"{act.reminder_round or 'no round'} to {OUTGOING} and {INCOMING}",
    )
    acks = [
        (a.get("contact_id") or a.get("user_id"), a["via"])
        for a in act.alert.get("acknowledgements", [])
    ]
    run.check(
        "acknowledged by the one briefed, by SMS with the briefing's code",
        acks == [(INCOMING, "sms")],
        ", ".join(f"{who} via {via}" for who, via in acks) or "nobody",
    )
    stood = {
        n["contact_id"] for n in act.alert.get("notifications", []) if n["step_key"] == "stand_down"
    }
    run.check(
        "resolved, and both duty managers stood down",
        act.alert.get("status") == "resolved" and {OUTGOING, INCOMING} <= stood,
        f"status {act.alert.get('status')}; stood down {', '.join(sorted(stood)) or 'nobody'}",
    )
    withdrawal_check(act)


async def handover(system: DevSystem, people: Directory, run: Run) -> None:
    """Act 2: a handover during an open alert; its checks noted in `run`."""
    heading("ACT 2 - the handover: the duty manager on call changes while an alert is open")
    act = Act(system, people, run)
    feed = ProviderFeed(
        system, people, act.sms_from, act.mail_from, only=frozenset({OUTGOING, INCOMING})
    )
    feed.say(
        f"Only the messages to Hackney's duty managers {OUTGOING} and {INCOMING} are shown; the "
        "police control room and the home are paged alongside."
    )
    narrating = asyncio.create_task(feed.run())
    change_id = ""
    played = False
    try:
        async with system.client(MANAGER) as client:
            try:
                await _paged(act, feed)
                change_id = await _hand_over(act, feed, client)
                await _briefed(act, feed)
                await _reminded(act, feed)
                await _acknowledged(act, feed)
                await _stood_down(act, feed)
                played = True
            finally:
                if change_id:
                    feed.say()
                    await _withdraw(act, feed, client, change_id)
    finally:
        narrating.cancel()
        await asyncio.gather(narrating, return_exceptions=True)
        feed.drain()
        if not played:
            withdrawal_check(act)  # the act stopped short: its other checks are not made
    checks(act)
