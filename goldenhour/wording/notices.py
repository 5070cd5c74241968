"""The plainest messages there are, for an alert whose clock keeps failing: built from the row's
own columns only, since the richer wording may be what fails."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def fallback(
    child_id: str, kind: str, anchor_at: datetime, ack_code: str, tz: ZoneInfo
) -> dict[str, tuple[str, str]]:
    """Subject and body by channel (`sms`, `email`): the case reference, the kind, the
    last-seen time and the acknowledgement code, and nothing else."""
    seen = anchor_at.astimezone(tz).strftime("%H:%M %d/%m")
    what = f"case {child_id} {kind.replace('_', ' ')}, last seen {seen}"
    return {
        "sms": ("", f"GOLDEN HOUR ALERT {what}. Reply ACK {ack_code}"),
        "email": (
            f"Golden Hour alert: case {child_id}",
            f"Golden Hour alert: {what}.\n\nAcknowledge by replying to the SMS with"
            f" ACK {ack_code}, or in the console.\n",
        ),
    }


def clock_failing(
    child_id: str, kind: str, alert_id: object, failures: int, error: str, fallback_sent: bool
) -> tuple[str, str]:
    """Subject and body of the operations contacts' notice that an alert's clock keeps failing."""
    fallback_line = (
        "Its first-step recipients were sent a plain fallback message.\n" if fallback_sent else ""
    )
    return (
        f"Golden Hour: alert for case {child_id} keeps failing",
        f"The escalation clock could not process the {kind} alert"
        f" {alert_id} for case {child_id} {failures} times in a row; it"
        f" keeps retrying with backoff.\n\nLast error: {error}\n{fallback_line}",
    )
