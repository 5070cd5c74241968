"""The words of a rota's own messages: the handover briefing to whoever comes on call, and the
email a day before a gap in the rota. Like every SMS, the briefing carries case references and
codes, never a name, and nothing typed by a reporter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from goldenhour.contracts.alert_kinds import LABELS
from goldenhour.wording.messages import SMS_BODY_MAX


@dataclass(frozen=True)
class Held:
    """An open alert the incoming person now holds, as a briefing may name it."""

    child_id: str
    kind: str
    risk_level: str
    anchor_at: datetime
    ack_code: str


def _role(role: str) -> str:
    return role.replace("_", " ")


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M %d/%m")


def _item(alert: Held, tz: ZoneInfo) -> str:
    what = "missing" if alert.kind == "missing" else LABELS.get(alert.kind, alert.kind)
    return f"{alert.child_id} {what} since {_local(alert.anchor_at, tz)} ACK {alert.ack_code}"


def briefing_sms(role: str, org_code: str, alerts: Sequence[Held], tz: ZoneInfo) -> str:
    """One SMS: you are on call, and the open alerts not yet acknowledged that you now hold,
    most recent first (the ones still in their golden hour), as many as fit; the rest are
    counted, and the console lists them all."""
    head = (
        f"GOLDEN HOUR HANDOVER: you are on call now as {org_code} {_role(role)}."
        f" {len(alerts)} open, not acknowledged:"
    )
    tail = " Reply ACK and the code when acting."
    items = [_item(a, tz) for a in sorted(alerts, key=lambda a: a.anchor_at, reverse=True)]
    for shown in range(len(items), 0, -1):
        rest = len(items) - shown
        listed = "; ".join(items[:shown]) + (f"; +{rest} more in the console" if rest else "")
        text = f"{head} {listed}.{tail}"
        if len(text) <= SMS_BODY_MAX:
            return text
    return f"{head} see the console.{tail}"[:SMS_BODY_MAX]


def briefing_email(
    role: str, org_code: str, alerts: Sequence[Held], tz: ZoneInfo
) -> tuple[str, str]:
    """Subject and body of the briefing's email: every alert held, one line each."""
    lines = "\n".join(
        f"- Case {a.child_id}: {LABELS.get(a.kind, a.kind)}, {a.risk_level} risk,"
        f" since {_local(a.anchor_at, tz)}. Acknowledge with ACK {a.ack_code}."
        for a in sorted(alerts, key=lambda a: a.anchor_at, reverse=True)
    )
    return (
        f"Golden Hour handover: {len(alerts)} open alert(s) you now hold",
        f"You are now on call as {_role(role)} for {org_code}. These alerts are open and nobody"
        f" has acknowledged them yet; you will get their reminders until one of you does:\n\n"
        f"{lines}\n\nAcknowledge by replying to the SMS with ACK and the code, or in the"
        " console, where these alerts are listed first.\n",
    )


def gap_email(
    rota_id: str,
    role: str,
    org_code: str,
    start: datetime,
    end: datetime,
    fallback: str,
    tz: ZoneInfo,
) -> tuple[str, str]:
    """Subject and body of the notice, a day ahead, that nobody is on a rota's shift."""
    return (
        f"Golden Hour: nobody is on call as {_role(role)} from {_local(start, tz)}",
        f"Rota {rota_id} of {org_code} has nobody on call as {_role(role)} from"
        f" {_local(start, tz)} to {_local(end, tz)}. Until someone is, every alert step for"
        f" that role goes to the rota's fallback, {fallback}.\n\nAdd an override or a swap in"
        " the console's rota page to cover it.\n",
    )
