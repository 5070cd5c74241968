"""The promises about events and messages, checked over a run's evidence: pure functions.

Where it can, a check trusts what the system could not have written itself: the API's answers
(the harness's ledger) and what the providers received, against the rows of `evidence`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from goldenhour.chaos.evidence import Note, Step

# Steps that are not the policy's: reminders, stand-downs, the unreachable notices.
NOT_POLICY = ("r", "stand_down", "unreachable")
Owed = Mapping[tuple[str, str], set[tuple[str, str]]]


def poison_missing(
    injected: Mapping[str, float], found: Mapping[str, float], broker_restarts: list[float]
) -> tuple[list[str], list[str]]:
    """Poison records never dead-lettered: (missing, lost with the broker's log). A record
    produced before a broker restart may have gone with the log unread; it never passed
    through the outbox, so nothing could publish it again: that one is not the system's loss."""
    missing: list[str] = []
    with_log: list[str] = []
    for marker, at in sorted(injected.items()):
        if marker in found:
            continue
        (with_log if any(r > at for r in broker_restarts) else missing).append(marker)
    return missing, with_log


def lost_events(accepted: Iterable[str], applied: Mapping[str, float], dead: set[str]) -> list[str]:
    """I1: accepted event ids neither applied nor dead-lettered."""
    return sorted(e for e in accepted if e not in applied and e not in dead)


@dataclass(frozen=True)
class Unsent:
    """A due message the provider never received, and why the check thinks so."""

    key: tuple[str | None, str, str, str]
    reason: str


def never_sent(
    notes: list[Note],
    steps: list[Step],
    sms_per_note: Counter,
    mail_per_id: Counter,
    owed: Owed,
    calls_per_note: Counter | None = None,
) -> list[Unsent]:
    """Due messages the provider never received: a notification row (not cancelled by a
    stand-down, not a failure a person was told of) with nothing at the provider, or a fired
    step missing a message it owes (`owed`: (policy, step key) -> (contact, channel))."""
    calls = calls_per_note if calls_per_note is not None else Counter()
    told = _told(notes)
    reached = {n.notification_id for n in notes if sms_per_note[n.notification_id] > 0}
    unsent = []
    for n in notes:
        if n.status == "cancelled" or (n.status == "failed" and n.notification_id in told):
            continue
        if n.channel == "sms":
            received = sms_per_note[n.notification_id] > 0
        elif n.channel == "voice":
            # A call placed after an SMS that got through after all was no longer needed.
            received = calls[n.notification_id] > 0 or n.failover_of in reached
        elif n.channel == "email":
            received = mail_per_id[n.message_id] > 0
        else:  # webhooks: no local receiver is counted; trust the row
            received = n.status in ("sent", "delivered")
        if not received:
            unsent.append(Unsent(n.key, f"provider has none (row {n.status})"))
    have: dict[tuple[str | None, str], set[tuple[str, str]]] = {}
    told_by_alert: dict[str | None, set[tuple[str, str]]] = {}
    for n in notes:
        have.setdefault((n.alert_id, n.step_key), set()).add((n.contact_id, n.channel))
        if not n.step_key.startswith(NOT_POLICY):
            told_by_alert.setdefault(n.alert_id, set()).add((n.contact_id, n.channel))
    for s in steps:
        want = owed.get((s.policy, s.step_key)) if s.status == "fired" else None
        # A catch-up step (after a risk change) tells nobody the alert already told on that
        # channel under another step: that contact is not owed a second message.
        missing = (want or set()) - have.get((s.alert_id, s.step_key), set())
        missing -= told_by_alert.get(s.alert_id, set())
        for contact, channel in sorted(missing):
            unsent.append(Unsent((s.alert_id, s.step_key, contact, channel), "fired, no message"))
    return unsent


def _told(notes: list[Note]) -> set[str]:
    """Failed messages somebody was told of: marked told, or an `unreachable…` notice went
    out for the alert."""
    noticed = {n.alert_id for n in notes if n.step_key.startswith("unreachable")}
    return {
        n.notification_id
        for n in notes
        if n.status == "failed" and (n.unreachable_told_at is not None or n.alert_id in noticed)
    }


def failed_untold(notes: list[Note]) -> list[Note]:
    """I5: alert messages left `failed` with no person told that the contact was unreachable."""
    told = _told(notes)
    return [
        n
        for n in notes
        if n.status == "failed" and n.alert_id is not None and n.notification_id not in told
    ]


def sent_twice(notes: list[Note], sms_per_note: Counter) -> list[tuple[tuple, int]]:
    """I3: (alert, step, contact, channel) keys whose SMS the provider received more than once,
    beyond the one copy the dispatcher may declare (sent again unverified, counted and logged)."""
    return sorted(
        (
            (n.key, sms_per_note[n.notification_id])
            for n in notes
            if sms_per_note[n.notification_id] > 1 + min(n.unverified_sends, 1)
        ),
        key=lambda kv: str(kv[0]),
    )


def calls_twice(notes: list[Note], calls_per_note: Counter) -> list[tuple[tuple, int]]:
    """I3 for voice: (alert, step, contact) keys whose call the provider received more than once."""
    voice = [n for n in notes if n.channel == "voice"]
    return sent_twice(voice, calls_per_note)


def sent_unverified(notes: list[Note], sms_per_note: Counter) -> dict[str, dict[str, int]]:
    """By channel, the resends the dispatcher declared unverified (possible second copies), and
    of those SMS how many did reach the provider twice."""
    sent: Counter = Counter()
    for n in notes:
        sent[n.channel] += n.unverified_sends
    twice = sum(1 for n in notes if n.unverified_sends and sms_per_note[n.notification_id] > 1)
    found = {channel: {"sent": count} for channel, count in sorted(sent.items()) if count}
    if "sms" in found:
        found["sms"]["received_twice"] = twice
    return found


def unmatched_sms(notes: list[Note], sms_per_note: Counter) -> int:
    """SMS at the provider naming no notification row: sent for something nobody recorded."""
    known = {n.notification_id for n in notes}
    return sum(c for nid, c in sms_per_note.items() if nid not in known)


def mail_duplicates(mail_per_id: Counter) -> int:
    """Mails received more than once under one Message-ID (allowed after a crash mid-send)."""
    return sum(c - 1 for c in mail_per_id.values() if c > 1)


def sms_counts(sms: Iterable[tuple[str | None, float]]) -> Counter:
    """How many SMS the provider received per notification id."""
    return Counter(nid for nid, _ in sms if nid is not None)


def mail_counts(mails: Iterable[dict]) -> Counter:
    """How many mails the SMTP server received per Message-ID."""
    return Counter(m["message_id"] for m in mails)
