"""`goldenhour demo` (`make demo`): acceptance scenario 1 on the embedded stack, narrated.

A high-risk child (case LBH-2026-0042, identified by Hackney Children's Services) is placed at
Oak House; the home reports the child missing; the police control room, the duty manager and
the home's manager are told by SMS and email within a second; nobody acknowledges, so the
15-minute step reaches the missing persons unit and the head of service; the duty manager
replies `ACK <code>` by SMS; the later "unless acknowledged" step is skipped; the 60-minute step
tells the national missing persons unit; the child returns and everyone told is stood down.

Everything runs for real: Tansu (Kafka protocol) and PostgreSQL, the API, the golden-hour clock
and the dispatcher as their own processes, a local Twilio and a local SMTP server. One policy
minute lasts 0.2 s, so the golden hour passes in 12 s. The timeline printed at the end is read
back from the API (`GET /api/v1/alerts/{id}`), the record every agency sees.

Exit status: 0 when every expectation held, 1 when one failed (the reason is printed), 2 when
the system could not be started, 130 on Ctrl-C. Everything started is stopped in every case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx

from goldenhour.contracts.alert_kinds import is_renotify_key
from goldenhour.contracts.policy import Policy
from goldenhour.dev.devsystem import IDENTIFIED, TWILIO_FROM, DevSystem, directory, event, placement
from goldenhour.dev.stack import EmbeddedStack, StackError
from goldenhour.infra.logs import configure
from goldenhour.services.passwords import set_password_at

SCALE = 0.2  # seconds per policy minute: the golden hour lasts 12 s
CHILD = "LBH-2026-0042"
PLACE = "Mare Street bus stop, Hackney"
WIDTH = 100
TZ = ZoneInfo("Europe/London")
FIRST_WAVE = ("mps-cr", "lbh-duty", "oak-mgr")
SECOND_WAVE = ("mps-mpu", "lbh-head")
NATIONAL = "ukmpu"
NEIGHBOUR = "lbi-duty"
ACKER = "lbh-duty"
FIRST_SMS_WITHIN = 1.0  # the scenario's "within a second"
MARGIN = 5.0  # how long past its due time a step may take before the demo gives up
SETTLED = {"delivered", "failed", "cancelled"}
ROLE_WORDS = {
    "control_room": "control room",
    "duty_manager": "duty manager",
    "head_of_service": "head of service",
    "missing_persons_unit": "missing persons unit",
    "manager": "manager",
}


class ExpectationFailed(Exception):
    """Something scenario 1 expects did not happen."""


class StartFailed(Exception):
    """The system could not be started."""


# --- output --------------------------------------------------------------------------------


def _clip(text: str, width: int = WIDTH) -> str:
    text = " ".join(text.splitlines())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _clock(at: float | datetime | None = None) -> str:
    """Local wall-clock time with milliseconds, e.g. 21:40:00.000."""
    if at is None:
        at = time.time()
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone(TZ).strftime("%H:%M:%S.%f")[:-3]


def say(text: str = "", at: float | datetime | None = None, clip: bool = False) -> None:
    """One narration line, stamped with the time, wrapped (or clipped) to the page width."""
    if not text:
        print(flush=True)
        return
    stamp = f"{_clock(at)}  "
    if clip:
        print(_clip(stamp + text), flush=True)
        return
    lines = textwrap.wrap(text, WIDTH - len(stamp)) or [""]
    print(stamp + lines[0], flush=True)
    for line in lines[1:]:
        print(" " * len(stamp) + line, flush=True)


def heading(text: str) -> None:
    print(flush=True)
    print(text, flush=True)
    print("=" * min(len(text), WIDTH), flush=True)


# --- the directory, as the demo needs to name people -----------------------------------------


@dataclass
class Directory:
    """Who is who in the demo's directory: contacts, their organisations, phones and emails."""

    config: dict
    org_names: dict[str, str] = field(default_factory=dict)
    contact_org: dict[str, str] = field(default_factory=dict)
    contact_role: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    phone_of: dict[str, str] = field(default_factory=dict)
    # The high-risk policy's steps by their stable keys: (position, the step as configured).
    steps: dict[str, tuple[int, dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        high = self.config["policies"]["high"]
        for index, (step, raw) in enumerate(
            zip(Policy.model_validate(high).steps, high["steps"], strict=True)
        ):
            self.steps[step.key] = (index, raw)
        for org in self.config["organisations"]:
            self.org_names[org["code"]] = org.get("name") or org["code"]
            for contact in org.get("contacts", []):
                self.contact_org[contact["id"]] = org["code"]
                self.contact_role[contact["id"]] = contact["role"]
                self.by_phone[contact["phone"]] = contact["id"]
                self.by_email[contact["email"].lower()] = contact["id"]
                self.phone_of[contact["id"]] = contact["phone"]
            for user in org.get("users", []):
                self.contact_org.setdefault(user["id"], org["code"])

    def org_of(self, who: str) -> str:
        return self.org_names.get(self.contact_org.get(who, ""), "?")

    def describe(self, contact_id: str) -> str:
        """e.g. `mps-cr (Metropolitan Police, control room)`."""
        role = ROLE_WORDS.get(self.contact_role.get(contact_id, ""), "")
        return f"{contact_id} ({self.org_of(contact_id)}{', ' + role if role else ''})"

    def short(self, key: str) -> str:
        """A step's name in the timeline's narrow column: its place in the policy (`s0` the
        first), shorter than its stable key."""
        return f"s{self.steps[key][0]}" if key in self.steps else key

    def first_key(self) -> str:
        return next(iter(self.steps))

    def step_label(self, key: str, condition: bool = True) -> str:
        """What a step of the high-risk policy does, in words."""
        policy = self.config["policies"]["high"]
        if is_renotify_key(key):
            return f"reminder {key[1:]} of {policy['renotify_max']} to all not yet acknowledged"
        if key == "stand_down":
            return "stand-down to everyone told"
        if key not in self.steps:
            return key
        step = self.steps[key][1]
        minutes = _policy_minutes(step["after"])
        if step.get("share"):
            return f"+{minutes} min: shared alert"
        roles = [ROLE_WORDS.get(t.split(".", 1)[1], t) for t in step.get("notify", [])]
        kinds = [t.split(".", 1)[0] for t in step.get("notify", [])]
        prefix = {"national": "national ", "police": "police ", "care_home": "care home "}
        who = ", ".join(prefix.get(k, "") + r for k, r in zip(kinds, roles, strict=True))
        cond = " (unless acknowledged)" if condition and step.get("unless_acknowledged") else ""
        return f"+{minutes} min: {who}{cond}"


def _policy_minutes(after: str) -> int:
    """A scaled duration such as `3s` back into policy minutes (15)."""
    if after.endswith("s"):
        return round(float(after[:-1]) / SCALE)
    if after.endswith("m"):
        return int(after[:-1])
    return round(float(after.rstrip("h")) * 60)


# --- watching the providers ----------------------------------------------------------------


@dataclass
class Watcher:
    """Narrates every SMS and email as the local Twilio and SMTP servers receive it."""

    system: DevSystem
    people: Directory
    seen_sms: int = 0
    seen_mail: int = 0

    def drain(self) -> None:
        """Print what arrived since last time, oldest first."""
        lines: list[tuple[float, str]] = []
        messages = self.system.twilio.messages
        for sms in messages[self.seen_sms :]:
            who = self.people.by_phone.get(sms.to, sms.to)
            lines.append((sms.received_at, f"SMS    -> {who:<9} {sms.body}"))
        self.seen_sms = len(messages)
        mails = self.system.smtp.messages
        for mail in mails[self.seen_mail :]:
            to = ", ".join(self.people.by_email.get(r.lower(), r) for r in mail.rcpt_tos)
            lines.append((mail.received_at, f"email  -> {to:<9} {mail.subject}"))
        self.seen_mail = len(mails)
        for at, text in sorted(lines, key=lambda line: line[0]):
            say(text, at=at, clip=True)

    def say(self, text: str = "", at: float | None = None) -> None:
        """Narrate, after the messages that arrived before this moment."""
        self.drain()
        say(text, at)

    async def run(self) -> None:
        while True:
            self.drain()
            await asyncio.sleep(0.02)


async def until(
    predicate: Callable[[], bool], deadline: float, failure: str | Callable[[], str]
) -> None:
    """Wait until `predicate()` holds or the monotonic `deadline` passes (then fail)."""
    while not predicate():
        if time.monotonic() > deadline:
            raise ExpectationFailed(failure if isinstance(failure, str) else failure())
        await asyncio.sleep(0.02)


# --- the scenario --------------------------------------------------------------------------


@dataclass
class Run:
    """What the scenario observed on the way, for the summary."""

    reported_at: float = 0.0
    first_sms_ms: float = 0.0
    ack_code: str = ""
    ack_sent_at: float = 0.0
    alert_id: str = ""
    subscribed: bool | None = None  # None: the build has no subscriptions API
    started: float = field(default_factory=time.monotonic)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))


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
        while time.monotonic() < deadline:
            r = await la.get("/alerts", params={"status": "all"})
            if r.status_code == 200 and r.json():
                return str(r.json()[0]["alert_id"])
            await asyncio.sleep(0.05)
    raise ExpectationFailed("the absence raised no alert visible to the Hackney duty manager")


async def scenario(system: DevSystem, people: Directory, run: Run, watch: Watcher) -> None:
    say = watch.say
    sms_to = lambda: {people.by_phone.get(m.to) for m in system.twilio.messages}  # noqa: E731
    so_far = lambda: ", ".join(sorted(filter(None, sms_to()))) or "nobody"  # noqa: E731
    mail_to = lambda: {  # noqa: E731
        people.by_email.get(r.lower()) for m in system.smtp.messages for r in m.rcpt_tos
    }

    async with system.client("lbh-dm1") as la:
        await post_event(la, "child.identified", IDENTIFIED)
        say(
            f"Hackney duty manager (lbh-dm1) records {CHILD} identified as a presumed victim of "
            "trafficking: unaccompanied, criminal exploitation, HIGH risk"
        )
        await post_event(la, "placement.started", placement(CHILD))
        say(f"{CHILD} placed at Oak House (safe placement recorded inside the golden hour)")

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
    if r.status_code in (404, 405):
        run.subscribed = None
        say(
            "Islington's duty manager would subscribe to Hackney's shared alerts, but this build "
            f"has no subscriptions API yet (POST /subscriptions answered {r.status_code})"
        )
    elif r.status_code == 201:
        run.subscribed = True
        say("Islington's duty manager (lbi-dm1) subscribes lbi-duty to Hackney's shared alerts")
    else:
        raise ExpectationFailed(f"POST /subscriptions answered {r.status_code}: {r.text[:300]}")

    await asyncio.sleep(0.3)
    say()
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
    say(f"Oak House (oak-staff1) reports {CHILD} missing (last seen at {PLACE})", run.reported_at)
    say("The golden hour starts now, anchored at the time last seen.")
    t_report = time.monotonic()

    await until(
        lambda: set(FIRST_WAVE) <= sms_to(),
        t_report + MARGIN,
        lambda: (
            f"no first-wave SMS to all of {', '.join(FIRST_WAVE)} within {MARGIN:.0f} s of "
            f"the report (SMS so far to: {so_far()})"
        ),
    )
    first = min(m.received_at for m in system.twilio.messages)
    run.first_sms_ms = (first - run.reported_at) * 1000
    await until(
        lambda: set(FIRST_WAVE) <= mail_to(),
        t_report + MARGIN,
        f"no first-wave email to all of {', '.join(FIRST_WAVE)} within {MARGIN:.0f} s",
    )
    first_wave = [m for m in system.twilio.messages if "GOLDEN HOUR ALERT" in m.body]
    if not first_wave or "ACK " not in first_wave[0].body:
        raise ExpectationFailed("the first-wave SMS carries no 'Reply ACK <code>'")
    run.ack_code = first_wave[0].body.rsplit("ACK ", 1)[1].split()[0]
    say(
        f"First SMS {run.first_sms_ms:.0f} ms after the report. It carries the case reference, "
        "risk, time and place last seen, never a name:"
    )
    for text in textwrap.wrap(f'"{first_wave[0].body}"', WIDTH - 18):
        print(" " * 16 + text, flush=True)
    run.alert_id = await find_alert(system, t_report + MARGIN)

    say()
    say(
        "Nobody acknowledges. Reminders go every 10 policy minutes (2 s); the 15-minute step "
        f"(at +{15 * SCALE:.1f} s) tells the missing persons unit and the head of service."
    )
    due = t_report + 15 * SCALE
    await until(
        lambda: set(SECOND_WAVE) <= sms_to(),
        due + MARGIN,
        lambda: (
            f"the 15-minute step did not reach all of {', '.join(SECOND_WAVE)} by "
            f"+{15 * SCALE + MARGIN:.0f}s (SMS so far to: {so_far()})"
        ),
    )

    await asyncio.sleep(0.1)
    say()
    reply_body = f"ACK {run.ack_code}"
    say(f"Hackney duty manager ({ACKER}, {people.phone_of[ACKER]}) replies by SMS: {reply_body}")
    status, reply = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound",
        people.phone_of[ACKER],
        TWILIO_FROM,
        reply_body,
    )
    run.ack_sent_at = time.time()
    answer = _twiml_text(reply)
    if status != 200 or "acknowledged" not in answer:
        raise ExpectationFailed(f"the ACK reply was answered {status}: {answer[:200]}")
    say(f'Golden Hour answers the duty manager: "{answer}"')
    say(
        "Reminders stop; the 45-minute 'unless acknowledged' step will be skipped. The 30-minute "
        "shared alert and the 60-minute national step still go."
    )

    say()
    due = t_report + 60 * SCALE
    await until(
        lambda: NATIONAL in sms_to(),
        due + MARGIN,
        f"the 60-minute step did not reach the national missing persons unit by "
        f"+{60 * SCALE + MARGIN:.0f}s",
    )
    say("Golden hour expired: the national missing persons unit has been told.")
    await until(
        lambda: NATIONAL in mail_to(), time.monotonic() + MARGIN, "no email to ukmpu in time"
    )
    if run.subscribed:
        await until(
            lambda: NEIGHBOUR in sms_to() | mail_to(),
            time.monotonic() + MARGIN,
            "the 30-minute shared alert did not reach Islington's subscriber (lbi-duty)",
        )

    alert = await fetch_alert(system, run.alert_id)
    # The child's own agencies; a neighbour's subscriber gets the shared cancellation instead.
    own = [n for n in alert["notifications"] if not n["step_key"].startswith("share")]
    told = {n["contact_id"] for n in own}
    told_sms = {n["contact_id"] for n in own if n["channel"] == "sms"}
    told_email = {n["contact_id"] for n in own if n["channel"] == "email"}
    await asyncio.sleep(0.3)
    say()
    located = time.time()
    async with system.client("oak-staff1") as home:
        await post_event(
            home,
            "child.located",
            {
                "located_at": datetime.fromtimestamp(located, UTC).isoformat(),
                "location": "Oak House",
                "status": "returned",
            },
        )
    say(f"{CHILD} walks back into Oak House; staff record the child located (returned)", located)
    await until(
        lambda: sum("STAND DOWN" in m.body for m in system.twilio.messages) >= len(told_sms),
        time.monotonic() + MARGIN,
        f"stand-down SMS did not reach all {len(told_sms)} contacts told",
    )
    await until(
        lambda: sum("STAND DOWN" in m.subject for m in system.smtp.messages) >= len(told_email),
        time.monotonic() + MARGIN,
        f"stand-down email did not reach all {len(told_email)} contacts told",
    )
    stand_down = next(m.body for m in system.twilio.messages if "STAND DOWN" in m.body)
    if "return home interview" in stand_down.lower():
        say("Everyone told is stood down; a return home interview is now due within 72 hours.")

    # Let the delivery receipts land, so the timeline shows where each message ended up.
    deadline = time.monotonic() + MARGIN
    while time.monotonic() < deadline:
        alert = await fetch_alert(system, run.alert_id)
        stood = {n["contact_id"] for n in alert["notifications"] if n["step_key"] == "stand_down"}
        settled = all(
            n["status"] in SETTLED or (n["channel"] == "email" and n["status"] == "sent")
            for n in alert["notifications"]
        )
        if alert["status"] == "resolved" and stood >= told and settled:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)  # any message arriving late would show in the narration


def _twiml_text(xml: str) -> str:
    try:
        return " ".join(t.strip() for t in ElementTree.fromstring(xml).itertext() if t.strip())
    except ElementTree.ParseError:
        return xml.strip()


# --- checks, timeline and summary ----------------------------------------------------------


def final_checks(run: Run, alert: dict, system: DevSystem, people: Directory) -> None:
    steps = {s["step_key"]: s for s in alert["steps"]}
    notes = alert["notifications"]
    run.check(
        "first SMS within a second",
        run.first_sms_ms <= FIRST_SMS_WITHIN * 1000,
        f"{run.first_sms_ms:.0f} ms after the report",
    )
    first = people.first_key()
    s0 = Counter((n["contact_id"], n["channel"]) for n in notes if n["step_key"] == first)
    want = {(c, ch) for c in FIRST_WAVE for ch in ("sms", "email")}
    run.check(
        "first wave: one SMS and one email each",
        set(s0) == want and all(v == 1 for v in s0.values()),
        ", ".join(FIRST_WAVE),
    )
    # Acknowledged just after the 15-minute step: every later unless-acknowledged step is skipped.
    expected = {
        key: "skipped"
        if step.get("unless_acknowledged") and _policy_minutes(step["after"]) > 15
        else "fired"
        for key, (_, step) in people.steps.items()
    }
    got = {k: steps.get(k, {}).get("status", "missing") for k in expected}
    run.check(
        "steps fired and skipped as the policy says",
        got == expected,
        ", ".join(f"{people.short(k)} {v}" for k, v in got.items()),
    )
    acks = [(a.get("contact_id") or a.get("user_id"), a["via"]) for a in alert["acknowledgements"]]
    run.check(
        "acknowledged by the duty manager by SMS",
        acks == [(ACKER, "sms")],
        ", ".join(f"{who} via {via}" for who, via in acks) or "nobody",
    )
    dupes = [k for k, v in Counter(_note_key(n) for n in notes).items() if v > 1]
    run.check(
        "each contact told once per step and channel",
        not dupes,
        "no duplicates" if not dupes else f"duplicates: {dupes}",
    )
    quiet = [
        m
        for m in system.twilio.messages
        if m.received_at > run.ack_sent_at + 0.5
        and "STAND DOWN" not in m.body
        and ("REMINDER" in m.body or people.by_phone.get(m.to) == "mps-mpu")
    ]
    run.check(
        "no reminders and no missing-persons-unit message after the ACK",
        not quiet,
        f"{len(quiet)} such messages",
    )
    told = {
        n["contact_id"]
        for n in notes
        if n["step_key"] != "stand_down" and not n["step_key"].startswith("share")
    }
    stood = {n["contact_id"] for n in notes if n["step_key"] == "stand_down"}
    run.check(
        "resolved, and everyone told stood down",
        alert["status"] == "resolved" and stood == told,
        f"status {alert['status']}, stood down {len(stood)} of {len(told)}",
    )
    for channel, provider in (("sms", system.twilio.messages), ("email", system.smtp.messages)):
        recorded = sum(1 for n in notes if n["channel"] == channel and n["status"] != "cancelled")
        run.check(
            f"{channel}: API record matches what the provider received",
            recorded == len(provider),
            f"{recorded} recorded, {len(provider)} received",
        )
    if run.subscribed:
        run.check(
            "shared alert reached Islington's subscriber",
            any(n["contact_id"] == NEIGHBOUR for n in notes)
            or any(people.by_phone.get(m.to) == NEIGHBOUR for m in system.twilio.messages),
            NEIGHBOUR,
        )


def _note_key(n: dict) -> tuple[str, str, str]:
    return (n["contact_id"], n["step_key"], n["channel"])


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


# Column widths of the timeline table.
COLS = (("time", 8, ">"), ("policy", 7, ">"), ("step", 10, "<"), ("who", 8, "<"))
COLS += (("organisation", 29, "<"), ("channel", 7, "<"), ("status", 19, "<"))


def _row(cells: list[str]) -> str:
    out = []
    for (_, width, align), cell in zip(COLS, cells, strict=False):
        cell = cell if len(cell) <= width else cell[: width - 1] + "~"
        out.append(f"{cell:{align}{width}}")
    return "  ".join(out).rstrip()[:WIDTH]


def _event_row(rel: str, pol: str, step: str, text: str) -> str:
    """A row that is an event rather than a message: its text spans the columns on the right."""
    head = "  ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip((rel, pol, step), COLS, strict=False))
    lines = textwrap.wrap(text, WIDTH - len(head) - 2) or [""]
    return "\n".join([f"{head}  {lines[0]}"] + [" " * (len(head) + 2) + ln for ln in lines[1:]])


def print_timeline(alert: dict, people: Directory, run: Run) -> None:
    anchor = _parse(alert["last_seen_at"])
    assert anchor is not None

    def rel(at: datetime) -> tuple[str, str]:
        seconds = (at - anchor).total_seconds()
        return f"{seconds:+.3f}s", f"{round(seconds / SCALE):+d} min"

    rows: list[tuple[datetime, int, str]] = []
    rows.append((anchor, 0, _event_row(*rel(anchor), "seen", f"LAST SEEN at {PLACE}")))
    opened = _parse(alert["opened_at"])
    assert opened is not None
    home = alert.get("care_home") or "-"
    home_name = people.org_names.get(home, home)
    text = f"ALERT RAISED: {alert['risk_level'].upper()} risk; {alert['local_authority']}, "
    text += f"placed at {home} ({home_name})"
    rows.append((opened, 1, _event_row(*rel(opened), "alert", text)))
    for step in alert["steps"]:
        at = _parse(step["decided_at"])
        assert at is not None
        label = people.step_label(step["step_key"], condition=False)
        word = {"fired": "FIRED", "skipped": "SKIPPED", "cancelled": "CANCELLED"}.get(
            step["status"], step["status"].upper()
        )
        if step["step_key"] == "stand_down":
            text = f"STAND DOWN ({step.get('detail') or 'located'}): {label}"
        elif step["status"] != "fired":
            text = f"{word} {label} ({step.get('detail') or 'no reason given'})"
        elif "share" in (step.get("detail") or ""):
            text = f"{word} {label}, {step['detail']}"
        else:
            text = f"{word} {label}"
        rows.append((at, 2, _event_row(*rel(at), people.short(step["step_key"]), text)))
    for n in alert["notifications"]:
        at = _parse(n["sent_at"]) or _parse(n["created_at"])
        assert at is not None
        status = n["status"]
        delivered, sent = _parse(n["delivered_at"]), _parse(n["sent_at"])
        if status == "delivered" and delivered and sent and n["channel"] == "sms":
            status = f"delivered {(delivered - sent).total_seconds() * 1000:.0f} ms"
        elif status == "failed" and n.get("last_error"):
            status = f"failed: {n['last_error']}"
        org = people.org_names.get(n["org_code"], n["org_code"])
        cells = [*rel(at), people.short(n["step_key"]), n["contact_id"], org, n["channel"], status]
        rows.append((at, 3, _row(cells)))
    for ack in alert["acknowledgements"]:
        at = _parse(ack["acknowledged_at"])
        assert at is not None
        who = ack.get("contact_id") or ack.get("user_id") or "?"
        how = f"replied ACK {run.ack_code}" if ack["via"] == "sms" else "acknowledged"
        org = people.org_names.get(ack["org_code"], ack["org_code"])
        rows.append((at, 4, _row([*rel(at), "ack", who, org, ack["via"], how])))
    resolved = _parse(alert.get("resolved_at"))
    if resolved:
        text = f"LOCATED ({alert.get('resolution')}): alert resolved"
        rows.append((resolved, 1, _event_row(*rel(resolved), "located", text)))

    heading(
        f"TIMELINE of case {alert['child_id']}, alert {str(alert['alert_id'])[:8]} "
        f"(GET /api/v1/alerts/{{id}})"
    )
    print(
        f"Times from last seen ({_clock(anchor)}); policy minutes at {SCALE} s each. "
        f"Status now: {alert['status'].upper()}.",
        flush=True,
    )
    print(flush=True)
    print(_row([name for name, _, _ in COLS]), flush=True)
    print(_row(["-" * w for _, w, _ in COLS]), flush=True)
    for _, _, line in sorted(rows, key=lambda r: (r[0], r[1])):
        print(line, flush=True)


def print_summary(alert: dict, people: Directory, run: Run, system: DevSystem) -> None:
    anchor = _parse(alert["last_seen_at"])
    assert anchor is not None
    notes = alert["notifications"]
    heading("SUMMARY")

    def line(name: str, text: str) -> None:
        lines = textwrap.wrap(text, WIDTH - 24) or [""]
        print(f"  {name:<22}{lines[0]}", flush=True)
        for more in lines[1:]:
            print(" " * 24 + more, flush=True)

    for name, provider in (("SMS", system.twilio.messages), ("email", system.smtp.messages)):
        if provider and run.reported_at:
            ms = (min(m.received_at for m in provider) - run.reported_at) * 1000
            line(f"first {name}", f"{ms:.0f} ms after the report (as the provider received it)")
        else:
            line(f"first {name}", "none")
    for channel in ("sms", "email"):
        statuses = Counter(n["status"] for n in notes if n["channel"] == channel)
        detail = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
        line(f"{channel} messages", f"{sum(statuses.values())} ({detail})")
    per_step = Counter(n["step_key"] for n in notes)
    line("messages per step", ", ".join(f"{k} {v}" for k, v in per_step.items()))
    dupes = [k for k, v in Counter(_note_key(n) for n in notes).items() if v > 1]
    line(
        "once per step",
        "yes: each contact told once per step and channel" if not dupes else f"NO: {dupes}",
    )
    for ack in alert["acknowledgements"]:
        at = _parse(ack["acknowledged_at"])
        assert at is not None
        seconds = (at - anchor).total_seconds()
        who = ack.get("contact_id") or ack.get("user_id") or "?"
        line(
            "acknowledged by",
            f"{people.describe(who)} via {ack['via']}, at +{seconds:.3f}s "
            f"(+{round(seconds / SCALE)} min)",
        )
    if not alert["acknowledgements"]:
        line("acknowledged by", "nobody")
    for step in alert["steps"]:
        if step["status"] == "skipped":
            line("skipped", f"{step['step_key']} {people.step_label(step['step_key'])}")
            line("", f"because: {step.get('detail')}")
    shared = [s for s in alert["steps"] if "share" in (s.get("detail") or "")]
    if shared:
        line("shared alert", f"{shared[0]['step_key']} fired: {shared[0]['detail']}")
    resolved = _parse(alert.get("resolved_at"))
    if resolved:
        seconds = (resolved - anchor).total_seconds()
        stood = {n["contact_id"] for n in notes if n["step_key"] == "stand_down"}
        line(
            "resolved",
            f"{alert.get('resolution')} at +{seconds:.3f}s (+{round(seconds / SCALE)} min); "
            f"stand-down to {len(stood)} contacts",
        )
    else:
        line("resolved", f"no (status {alert['status']})")
    line("wall time", f"{time.monotonic() - run.started:.1f} s so far")
    print(flush=True)
    print("CHECKS", flush=True)
    if not run.checks:
        print("  not run: the scenario stopped early (see the reason below)", flush=True)
    print_checks(run.checks)


def print_checks(checks: list[tuple[str, bool, str]]) -> None:
    for name, ok, detail in checks:
        text = f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}"
        print(textwrap.fill(text, WIDTH, subsequent_indent=" " * 9), flush=True)


# --- running it ----------------------------------------------------------------------------


def quiet_logs() -> None:
    """Keep this process's logs (and aiosmtpd's) out of the narration: warnings and worse only."""
    configure("warning")
    logging.getLogger().setLevel(logging.WARNING)  # basicConfig may already have run at info
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)


async def run_demo(stack: EmbeddedStack, run: Run) -> int:
    from goldenhour.demo.watchers import WATCHERS, before_they_go_missing

    config, keys = directory(scale=SCALE, extra_unless_ack_step=True, watchers=WATCHERS)
    people = Directory(config)
    system = DevSystem(
        stack.kafka_bootstrap,
        stack.database_url,
        config,
        keys,
        {"GOLDENHOUR_LOG_LEVEL": "warning"},
    )
    t0 = time.monotonic()
    say("Starting the API, the golden-hour clock (streams) and the dispatcher as processes...")
    try:
        await system.start()  # on failure it stops what it started
    except (RuntimeError, OSError) as exc:
        raise StartFailed(str(exc)) from exc
    try:
        pids = ", ".join(f"{name} {part.pid}" for name, part in system.parts.items())
        say(f"System ready in {time.monotonic() - t0:.1f} s ({pids}); API at {system.api_url}")
        say(
            f"Local Twilio at {system.twilio.base_url}, local SMTP on port {system.smtp.port}; "
            f"one policy minute = {SCALE} s, so the golden hour lasts {60 * SCALE:.0f} s"
        )
        password = secrets.token_urlsafe(12)
        await set_password_at(system.database_url, "lbh-dm1", password)
        console = system.api_url.replace("127.0.0.1", "localhost") + "/console"
        say(f"Console: {console} - sign in as lbh-dm1, password {password}")
        say()
        watch = Watcher(system, people)
        watcher = asyncio.create_task(watch.run())
        failure: ExpectationFailed | None = None
        try:
            await scenario(system, people, run, watch)
        except ExpectationFailed as exc:
            failure = exc
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            watch.drain()

        alert = None
        if not run.alert_id and run.reported_at:
            try:
                run.alert_id = await find_alert(system, time.monotonic() + 2.0)
            except (ExpectationFailed, httpx.HTTPError):
                pass
        if run.alert_id:
            try:
                alert = await fetch_alert(system, run.alert_id)
            except (ExpectationFailed, httpx.HTTPError) as exc:
                failure = failure or ExpectationFailed(f"could not read the timeline: {exc}")
        if alert is not None:
            if failure is None:
                final_checks(run, alert, system, people)
            print_timeline(alert, people, run)
            print_summary(alert, people, run, system)
        if failure is None:
            scenario_checks = len(run.checks)
            try:
                await before_they_go_missing(system, run)
            except (ExpectationFailed, httpx.HTTPError) as exc:
                failure = exc if isinstance(exc, ExpectationFailed) else ExpectationFailed(str(exc))
            print()
            print("CHECKS (act 2)", flush=True)
            print_checks(run.checks[scenario_checks:])
        if os.environ.get("GOLDENHOUR_DEMO_STAY"):
            say(f"Still running for the console at {console} (lbh-dm1 / {password}); Ctrl-C stops.")
            await asyncio.Event().wait()
    finally:
        print(flush=True)
        say("Stopping the API, the clock, the dispatcher and the local Twilio and SMTP servers...")
        await system.stop()
    if failure is not None:
        raise failure
    failed = [name for name, ok, _ in run.checks if not ok]
    if failed:
        raise ExpectationFailed("; ".join(failed))
    return 0


def main() -> int:
    """Run acceptance scenario 1 on the embedded stack; 0 when every expectation held."""
    quiet_logs()
    run = Run()
    print(
        "GOLDEN HOUR demo - acceptance scenario 1: a high-risk child goes missing from placement",
        flush=True,
    )
    print("=" * 88, flush=True)
    try:
        say("Starting the embedded Kafka-protocol broker (Tansu) and PostgreSQL...")
        t0 = time.monotonic()
        with EmbeddedStack(durable=False) as stack:
            took = time.monotonic() - t0
            say(f"Broker at {stack.kafka_bootstrap}; PostgreSQL ready; took {took:.1f} s")
            code = asyncio.run(run_demo(stack, run))
            say("Stopping the broker and PostgreSQL...")
        say(f"Everything stopped. Wall time {time.monotonic() - run.started:.1f} s.")
        print("RESULT: PASS - every expectation of both acts held.", flush=True)
        return code
    except KeyboardInterrupt:
        print(flush=True)
        say("Interrupted: every process the demo started has been stopped.")
        return 130
    except ExpectationFailed as exc:
        say("Everything stopped.")
        print(f"RESULT: FAIL - {exc}", flush=True)
        return 1
    except (StackError, StartFailed) as exc:
        print(f"RESULT: FAIL - the system could not be started: {exc}", flush=True)
        return 2
