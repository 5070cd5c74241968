"""The words of a shared alert to a neighbouring authority: only the allow-listed facts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from goldenhour.contracts.shared import SharedAlert
from goldenhour.wording.messages import SMS_BODY_MAX

_HEAD = {
    "Alert": "SHARED ALERT",
    "Update": "SHARED ALERT UPDATE",
    "Cancel": "SHARED ALERT CANCELLED",
}


def _looks(s: SharedAlert) -> str:
    parts = [
        f"~{s.age_estimate} yrs" if s.age_estimate is not None else "",
        s.gender or "",
        f"{s.height_cm} cm" if s.height_cm else "",
        s.clothing or "",
    ]
    return ", ".join(p for p in parts if p)


def sms_shared(s: SharedAlert, tz: ZoneInfo) -> str:
    """A neighbouring authority's SMS: case reference, description, last seen, who to call."""
    if s.msg_type == "Cancel":
        return (
            f"{_HEAD['Cancel']} by {s.issuing_authority_name}: case {s.case_reference} has "
            "been located. No further action."
        )[:SMS_BODY_MAX]
    seen = s.last_seen_at.astimezone(tz).strftime("%H:%M %a %d %b")
    call = " If seen call 999." + (f" Duty desk {s.duty_number}." if s.duty_number else "")
    text = (
        f"{_HEAD[s.msg_type]} from {s.issuing_authority_name}: missing child, case "
        f"{s.case_reference}, {s.risk_level.value.upper()} risk. {_looks(s)}. Last seen {seen}"
        f" at {s.last_seen_location or 'place not given'}."
    )
    room = SMS_BODY_MAX - len(call)
    return (text if len(text) <= room else text[: room - 1] + "…") + call


def email_shared(s: SharedAlert, tz: ZoneInfo) -> tuple[str, str]:
    """Subject and body of the shared alert's email, from the allow-listed fields alone."""
    subject = f"[{_HEAD[s.msg_type]}] case {s.case_reference} ({s.issuing_authority_name})"
    if s.msg_type == "Cancel":
        return subject, (
            f"Case {s.case_reference} has been located. The shared alert from "
            f"{s.issuing_authority_name} is cancelled; no further action.\n"
        )
    lines = [
        f"{_HEAD[s.msg_type]} from {s.issuing_authority_name} ({s.issuing_authority})",
        "",
        f"Case reference: {s.case_reference}",
        f"Risk level: {s.risk_level.value}",
        f"Last seen: {s.last_seen_at.astimezone(tz).strftime('%H:%M %a %d %b %Y')}",
        f"Last seen at: {s.last_seen_location or 'not given'}",
        f"Age (estimate): {s.age_estimate if s.age_estimate is not None else 'not given'}",
        f"Gender: {s.gender or 'not given'}",
        f"Height: {str(s.height_cm) + ' cm' if s.height_cm else 'not given'}",
        f"Clothing: {s.clothing or 'not given'}",
        f"Languages: {', '.join(s.languages) or 'not given'}",
        "",
        "If seen, do not approach: call 999 and quote the case reference.",
        f"Issuing authority's duty desk: {s.duty_number or 'see your directory'}",
        f"Alert reference: {s.alert_reference} (version {s.version})",
    ]
    return subject, "\n".join(lines) + "\n"
