"""The words of an alert's timeline: what each decided step did, as the console shows it."""

from __future__ import annotations

from collections.abc import Sequence

SKIPPED = "acknowledged before it fell due"
SHARED = "shared alert to neighbouring authorities' subscribers"


def fired(
    told: Sequence[str],
    withheld: Sequence[tuple[str, str]] = (),
    shared: bool = False,
    escalated: bool = False,
    by: str | None = None,
) -> str:
    """A fired step: who it told (`contact/channel`), who a catch-up step did not tell again
    because the alert had told them already, and who fired it early (`escalated`)."""
    detail = f"escalated now by {by}; " if escalated else ""
    if shared:
        detail += SHARED
    elif told:
        detail += "told: " + ", ".join(told)
    else:
        detail += "told: nobody new"
    if withheld:
        detail += "; not told again (already told by this alert): " + ", ".join(
            f"{contact}/{channel}" for contact, channel in withheld
        )
    return detail


def renotified(told: Sequence[str]) -> str:
    """A re-notification round: who it reminded."""
    return "re-notified: " + ", ".join(told)


def resolved(reason: str) -> str:
    """The stand-down line of a resolved alert."""
    return f"resolved: {reason}"


def last_seen_ahead(given: str, ahead_s: float) -> str:
    """The last-seen time given was after the report was accepted (`given` as the clock
    shows it locally)."""
    return (
        f"last seen given as {given}, {round(ahead_s)} s after the report"
        " was accepted: the clock runs from the time of the report"
    )
