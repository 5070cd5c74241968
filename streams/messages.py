"""The words of every message: SMS within 320 characters and never a name; email with more.

Pure functions: the alert's facts and `now` in, text out. Each kind of alert says what happened
and what the reader is asked to do; the case reference stands for the child.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

SMS_MAX = 320

HEADLINES = {
    "missing": "GOLDEN HOUR ALERT",
    "identification": "GOLDEN HOUR: NO SAFE PLACEMENT",
    "missed_checkin": "WELFARE CONCERN",
    "curfew": "WELFARE CONCERN",
    "risk_signal": "RISK ALERT",
    "strategy_meeting": "STRATEGY MEETING NEEDED",
    "return_interview": "RETURN INTERVIEW DUE",
}
LABELS = {
    "missing": "missing-child alert",
    "identification": "identification alert",
    "missed_checkin": "welfare concern (missed check-in)",
    "curfew": "welfare concern (curfew)",
    "risk_signal": "risk alert",
    "strategy_meeting": "strategy meeting prompt",
    "return_interview": "return interview reminder",
}


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


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M %a %d %b")


def _ago(at: datetime, now: datetime) -> str:
    minutes = max(0, int((now - at).total_seconds() // 60))
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min ago"


def _when(value: str | None, tz: ZoneInfo) -> str:
    return _local(datetime.fromisoformat(value), tz) if value else "not recorded"


def _headline(facts: AlertFacts, step_key: str, renotify_max: int) -> str:
    if step_key.startswith("r"):
        return f"REMINDER {step_key[1:]}/{renotify_max}: NOT YET ACKNOWLEDGED"
    if step_key == "s0":
        return HEADLINES.get(facts.kind, "ALERT")
    if facts.kind == "return_interview":
        return "RETURN INTERVIEW OVERDUE"
    return "ESCALATION"


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
        return _fit(f"{head}: {_situation(facts, now, tz)}", SMS_MAX - len(tail)) + tail
    seen = f"Last seen {_local(facts.anchor_at, tz)} ({_ago(facts.anchor_at, now)})"
    fixed = f"{head}: child missing, {facts.risk_level.upper()} risk. Case {facts.child_id}. {seen}"
    place = facts.last_seen_location or "place not given"
    room = SMS_MAX - len(fixed) - len(tail) - len(" at .")
    return f"{fixed} at {_fit(place, max(room, 10))}.{tail}"[:SMS_MAX]


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
    return text[:SMS_MAX]


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
        if facts.facts.get("detail"):
            lines.append(f"Reported: {facts.facts['detail']}")
    else:
        subject = f"[{facts.risk_level.upper()}] {head}: case {facts.child_id} missing"
        lines = [
            head,
            "",
            f"Case reference: {facts.child_id}",
            f"Risk level: {facts.risk_level}",
            f"Last seen: {_local(facts.anchor_at, tz)} ({_ago(facts.anchor_at, now)})",
            f"Last seen at: {facts.last_seen_location or 'not given'}",
        ]
        if facts.circumstances:
            lines.append(f"Circumstances: {facts.circumstances}")
        if facts.clothing:
            lines.append(f"Clothing: {facts.clothing}")
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
