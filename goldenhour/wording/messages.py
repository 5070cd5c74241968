"""The words of every message: SMS within 320 characters and never a name; email with more;
the script a voice call reads out.

Pure functions: the alert's facts and `now` in, text out. Each kind of alert says what happened
and what the reader is asked to do; the case reference stands for the child.

What each may carry (an allow-list; nothing else about the child is ever read here):
- SMS and voice call, to police and duty managers, which anyone nearby may read or hear: the
  case reference, the risk, the last-seen time and the last-seen location made one line and
  screened (`streams.screen`: a location that mentions nationality or immigration status, or
  reads like an instruction of our own, says "see the case in Golden Hour" instead; the
  timeline records it). Never the circumstances or the clothing.
- Email, to the child's own agencies only: the above, the location as given, and the
  circumstances, the clothing and a risk signal's detail, each made one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from goldenhour.contracts.alert_kinds import HEADLINES, LABELS, is_renotify_key, policy_for_alert
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.fields import one_line
from goldenhour.wording.screen import WITHHELD, screen

SMS_MAX = 320
# The dispatcher appends " Ref XXXXXX" to every SMS, a marker unique to the message that its
# reconcile looks for; the body leaves room for it so the whole SMS stays within SMS_MAX.
SMS_REF_ROOM = 11
SMS_BODY_MAX = SMS_MAX - SMS_REF_ROOM
# The most of a typed last-seen place an SMS carries: a street, a landmark and a postcode.
SMS_PLACE_MAX = 120
_QUOTES = str.maketrans(
    {'"': "'", "\u201c": "'", "\u201d": "'", "\u201e": "'", "\u00ab": "'", "\u00bb": "'"}
)


@dataclass(frozen=True)
class AlertFacts:
    """What a message may say about an alert. Carries no name: the case reference stands for it."""

    alert_id: str
    child_id: str
    kind: str
    risk_level: str
    anchor_at: datetime
    last_seen_location: str | None
    ack_code: str
    circumstances: str | None = None
    clothing: str | None = None
    local_authority_name: str = ""
    care_home_name: str = ""
    facts: dict = field(default_factory=dict)  # what a watcher's alert is about
    # The key of the first step of the alert's policy: its messages carry the alert's headline,
    # later steps' say ESCALATION. None: only a legacy first-step key ("s0") counts.
    first_step: str | None = None


# An alert opened before steps had stable keys keyed them by position: "s0" was the first.
LEGACY_FIRST_STEP = "s0"


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M %a %d %b")


def _ago(at: datetime, now: datetime) -> str:
    minutes = max(0, int((now - at).total_seconds() // 60))
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min ago"


def _when(value: str | None, tz: ZoneInfo) -> str:
    return _local(datetime.fromisoformat(value), tz) if value else "not recorded"


def _headline(facts: AlertFacts, step_key: str, renotify_max: int) -> str:
    if is_renotify_key(step_key):
        return f"REMINDER {step_key[1:]}/{renotify_max}: NOT YET ACKNOWLEDGED"
    if step_key == facts.first_step or step_key == LEGACY_FIRST_STEP:
        return HEADLINES.get(facts.kind, "ALERT")
    if facts.kind == "return_interview":
        return "RETURN INTERVIEW OVERDUE"
    return "ESCALATION"


def _line(text: str | None) -> str | None:
    """A stored text as one line (rows stored before the contract made every text one line)."""
    return one_line(text) or None if text is not None else None


def spoken_location(facts: AlertFacts) -> str | None:
    """The last-seen location as an SMS or a call may say it: one line, and screened."""
    return screen(_line(facts.last_seen_location)).text


def withheld_from_sms(facts: AlertFacts) -> list[str]:
    """The fields an SMS or a call of this alert says "see the case in Golden Hour" for."""
    place = facts.last_seen_location
    return ["last_seen_location"] if screen(_line(place)).withheld else []


def _fit_words(text: str, limit: int) -> str:
    """`text` within `limit`, cut at a word where it must be cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;.") + "…"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _situation(facts: AlertFacts, now: datetime, tz: ZoneInfo) -> str:
    """What happened and what is asked, for every kind but a missing child."""
    case, risk, f = facts.child_id, facts.risk_level.upper(), facts.facts
    if facts.kind == "identification":
        return (
            f"no safe placement recorded for case {case} ({risk} risk), identified "
            f"{_when(f.get('identified_at'), tz)}. Place the child now."
        )
    if facts.kind == "missed_checkin":
        return (
            f"no check-in for case {case} since {_when(f.get('last_checkin_at'), tz)}. "
            "Record a check-in or report an absence now."
        )
    if facts.kind == "curfew":
        return (
            f"no check-in for case {case} after curfew {f.get('curfew', '')}. "
            "Record a check-in or report an absence now."
        )
    if facts.kind == "risk_signal":
        return (
            f"trafficker contact reported for case {case} at "
            f"{_local(facts.anchor_at, tz)} ({_ago(facts.anchor_at, now)}); risk now {risk}. "
            "Act now to keep the child safe."
        )
    if facts.kind == "strategy_meeting":
        return (
            f"case {case} has gone missing {f.get('episodes')} times in "
            f"{f.get('window')}; risk now {risk}. Convene a strategy meeting."
        )
    if facts.kind == "return_interview":
        return (
            f"case {case} was located {_when(f.get('located_at'), tz)}; the return home "
            f"interview is due by {_when(f.get('due_at'), tz)}."
        )
    return f"case {case}, {risk} risk."


def sms_alert(
    facts: AlertFacts, step_key: str, now: datetime, tz: ZoneInfo, renotify_max: int
) -> str:
    """The SMS for one step: case reference, what happened, when, where, and the ACK code."""
    head = _headline(facts, step_key, renotify_max)
    tail = f" Reply ACK {facts.ack_code} when you are acting on it."
    if facts.kind != "missing":
        return _fit(f"{head}: {_situation(facts, now, tz)}", SMS_BODY_MAX - len(tail)) + tail
    seen = f"Last seen {_local(facts.anchor_at, tz)} ({_ago(facts.anchor_at, now)})"
    fixed = f"{head}: child missing, {facts.risk_level.upper()} risk. Case {facts.child_id}. {seen}"
    place = spoken_location(facts)
    if place is None or place == WITHHELD:
        return f"{fixed}, place {place or 'not given'}.{tail}"[:SMS_BODY_MAX]
    # In quotes and short: what a reporter typed reads as their words, never as an instruction
    # of ours, and leaves no room for one.
    room = min(SMS_PLACE_MAX, SMS_BODY_MAX - len(fixed) - len(tail) - len(' at "".'))
    # Its own quotes become apostrophes: a typed quote could close ours and open an "instruction".
    quoted = _fit_words(place.translate(_QUOTES), max(room, 10))
    return f'{fixed} at "{quoted}".{tail}'[:SMS_BODY_MAX]


def sms_closed(facts: AlertFacts, at: datetime, reason: str, tz: ZoneInfo) -> str:
    """The SMS that stands a recipient down once the alert is resolved."""
    if facts.kind == "missing":
        text = (
            f"STAND DOWN: case {facts.child_id} located {_local(at, tz)} "
            f"({reason.replace('_', ' ')}). No further action on ACK {facts.ack_code}. "
            "A return home interview is now due."
        )
    else:
        text = (
            f"CLOSED: {LABELS.get(facts.kind, 'alert')} for case {facts.child_id}: "
            f"{reason} {_local(at, tz)}. No further action on ACK {facts.ack_code}."
        )
    return text[:SMS_BODY_MAX]


_SPOKEN_MARKS = {"-": "dash", ".": "dot", "_": "underscore"}
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


def spell_out(reference: str) -> str:
    """A case reference character by character, so a text-to-speech voice reads it clearly:
    "LBH-0042" -> "L B H dash 0 0 4 2"."""
    return " ".join(_SPOKEN_MARKS.get(c, c.upper()) for c in reference)


def _number(n: int) -> str:
    return _ONES[n] if n < 20 else _TENS[n // 10] + ("" if n % 10 == 0 else f" {_ONES[n % 10]}")


def spoken_time(at: datetime, tz: ZoneInfo) -> str:
    """A clock time as one says it: 21:40 -> "nine forty p m", 07:05 -> "seven oh five a m"."""
    local = at.astimezone(tz)
    hour = _number(local.hour % 12 or 12)
    half = "a m" if local.hour < 12 else "p m"
    if local.minute == 0:
        return f"{hour} o'clock {half}" if local.hour % 12 else f"{hour} {half}"
    minute = _number(local.minute)
    return f"{hour} {'oh ' if local.minute < 10 else ''}{minute} {half}"


def _spoken_ago(at: datetime, now: datetime) -> str:
    minutes = max(0, int((now - at).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} minute{'' if minutes == 1 else 's'} ago"
    return f"{minutes // 60} hours {minutes % 60} minutes ago"


def voice_alert(
    facts: AlertFacts, step_key: str, now: datetime, tz: ZoneInfo, renotify_max: int
) -> str:
    """What a voice call reads out for one step (a Twilio <Say>): what happened, the case
    reference spelt out, the risk, when and where the child was last seen, and how to
    acknowledge on the keypad. Never a name: like an SMS it may be heard by anyone nearby."""
    if is_renotify_key(step_key):
        head = f"Golden Hour reminder {step_key[1:]} of {renotify_max}: not yet acknowledged."
    else:
        written = _headline(facts, step_key, renotify_max).lower()
        head = written if written.startswith("golden hour") else f"golden hour {written}"
        head = head.replace("golden hour", "Golden Hour", 1) + "."
    case = f"Case reference {spell_out(facts.child_id)}."
    risk = f"{facts.risk_level.capitalize()} risk."
    if facts.kind == "missing":
        what = "A child is missing."
        place = spoken_location(facts) or "a place not given"
        seen = (
            f"Last seen at {spoken_time(facts.anchor_at, tz)},"
            f" {_spoken_ago(facts.anchor_at, now)}, at {place}."
        )
    else:
        what = f"A {LABELS.get(facts.kind, 'alert')}."
        seen = f"Raised at {spoken_time(facts.anchor_at, tz)}."
    ask = "Press 1 to acknowledge that you are acting on it."
    return " ".join((head, what, case, risk, seen, case, ask))


def alert_facts(alert: Mapping[str, Any], config: GoldenHourConfig) -> AlertFacts:
    """The facts a message may say about an alert, from its `alerts` row and the config."""
    la = config.org(alert["local_authority"])
    home = config.org(alert["care_home"]) if alert["care_home"] else None
    policy = policy_for_alert(config, alert["kind"], alert["risk_level"])
    return AlertFacts(
        alert_id=str(alert["alert_id"]),
        child_id=alert["child_id"],
        kind=alert["kind"],
        risk_level=alert["risk_level"],
        anchor_at=alert["anchor_at"],
        last_seen_location=alert["last_seen_location"],
        ack_code=alert["ack_code"],
        circumstances=alert["circumstances"],
        clothing=alert["clothing"],
        local_authority_name=(la.name or la.code) if la else "",
        care_home_name=(home.name or home.code) if home else "",
        facts=alert["facts"] or {},
        first_step=policy.steps[0].key,
    )


def email_alert(
    facts: AlertFacts,
    step_key: str,
    now: datetime,
    tz: ZoneInfo,
    renotify_max: int,
    ack_url: str | None = None,
) -> tuple[str, str]:
    """Subject and plain-text body of the email for one step; for the child's own agencies."""
    head = _headline(facts, step_key, renotify_max)
    if facts.kind != "missing":
        subject = f"[{facts.risk_level.upper()}] {head}: case {facts.child_id}"
        lines = [
            head,
            "",
            _situation(facts, now, tz),
            "",
            f"Case reference: {facts.child_id}",
            f"Risk level: {facts.risk_level}",
        ]
        if detail := _line(facts.facts.get("detail")):
            lines.append(f"Reported: {detail}")
    else:
        subject = f"[{facts.risk_level.upper()}] {head}: case {facts.child_id} missing"
        lines = [
            head,
            "",
            f"Case reference: {facts.child_id}",
            f"Risk level: {facts.risk_level}",
            f"Last seen: {_local(facts.anchor_at, tz)} ({_ago(facts.anchor_at, now)})",
            f"Last seen at: {_line(facts.last_seen_location) or 'not given'}",
        ]
        if circumstances := _line(facts.circumstances):
            lines.append(f"Circumstances: {circumstances}")
        if clothing := _line(facts.clothing):
            lines.append(f"Clothing: {clothing}")
    if facts.local_authority_name:
        lines.append(f"Local authority: {facts.local_authority_name}")
    if facts.care_home_name:
        lines.append(f"Placement: {facts.care_home_name}")
    if facts.kind == "missing":
        lines += [
            "",
            "The first hour after a trafficked child goes missing matters most: traffickers may",
            "be trying to take the child back. Please act now and acknowledge so that others know.",
        ]
    lines.append("")
    if ack_url:
        lines += ["To acknowledge that you are acting on it, open:", ack_url, "or reply"]
    else:
        lines.append("To acknowledge, reply")
    lines[-1] += f" to the SMS with: ACK {facts.ack_code}"
    lines.append(f"Alert: {facts.alert_id}")
    return subject, "\n".join(lines) + "\n"


def email_closed(facts: AlertFacts, at: datetime, reason: str, tz: ZoneInfo) -> tuple[str, str]:
    """Subject and body of the stand-down email."""
    if facts.kind == "missing":
        subject = f"STAND DOWN: case {facts.child_id} located"
        body = (
            f"Case {facts.child_id} was located at {_local(at, tz)} "
            f"({reason.replace('_', ' ')}).\n\n"
            "The missing-child alert is resolved; no further action is needed on it.\n"
            "A return home interview is now due within 72 hours.\n\n"
        )
    else:
        label = LABELS.get(facts.kind, "alert")
        subject = f"CLOSED: {label} for case {facts.child_id}"
        body = (
            f"The {label} for case {facts.child_id} is closed: {reason} "
            f"{_local(at, tz)}.\nNo further action is needed on it.\n\n"
        )
    return subject, body + f"Alert: {facts.alert_id}\n"
