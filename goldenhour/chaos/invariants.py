"""The promises checked after a chaos run: the evidence (SQL, read once) and pure checks over it.

Where it can, a check trusts what the system could not have written itself: the API's answers
(the harness's ledger) and what the providers received. The database says which messages were
due (its notification rows and decided steps) and which events were applied.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg

from goldenhour.chaos import faults
from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER
from goldenhour.notifiers.email import message_id_for

# A step attributed to a fault was due in it or up to this long after it ended.
ATTRIBUTION_S = 10.0
# A timer this far past due at the end of the run was never decided.
OVERDUE_GRACE_S = 5.0
# I2: a due step is decided within this long of its due time, or of the fault covering it.
DECIDED_WITHIN_S = 2.0
# An SMS is at the provider within this long of its due time whatever the email backlog.
SMS_WITHIN_S = 2.0
# Faults that hold back the deciding of a step: until one ends a step due in it cannot be
# decided. A provider's faults do not: the clock decides without asking Twilio or SMTP.
COVERS_STEPS = frozenset({*faults.INFRA_KINDS, faults.POLICY_REORDER})
# Steps that are not the policy's: reminders, stand-downs, the unreachable notices.
NOT_POLICY = ("r", "stand_down", "unreachable")
Owed = Mapping[tuple[str, str], set[tuple[str, str]]]


@dataclass(frozen=True)
class Note:
    """One notification row: a message the system decided was due."""

    notification_id: str
    alert_id: str | None
    child_id: str | None
    step_key: str
    contact_id: str
    channel: str
    status: str
    created_at: float = 0.0
    failover_of: str | None = None
    unreachable_told_at: float | None = None

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        return (self.alert_id, self.step_key, self.contact_id, self.channel)

    @property
    def message_id(self) -> str:
        """The Message-ID its mail carries (the dispatcher's deterministic one)."""
        return message_id_for(":".join(str(k) for k in self.key))


@dataclass(frozen=True)
class Step:
    """One decided escalation step."""

    alert_id: str
    child_id: str
    step_key: str
    status: str
    due_at: float  # epoch seconds, by the database's clock
    decided_at: float
    policy: str = "high"


@dataclass
class Evidence:
    """What the database holds at the end of a run."""

    applied: dict[str, float] = field(default_factory=dict)  # event_id -> processed_at
    dead_events: set[str] = field(default_factory=set)
    poison_found: dict[str, float] = field(default_factory=dict)  # marker -> dead-lettered at
    dead_letters: int = 0
    notes: list[Note] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    overdue: list[tuple[str, str, float]] = field(default_factory=list)  # alert, child, late s
    clock_failures: int = 0


async def collect(conn: asyncpg.Connection, markers: Iterable[str]) -> Evidence:
    """Read the evidence in one repeatable-read snapshot."""
    ev = Evidence()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for r in await conn.fetch(
            "SELECT event_id::text, extract(epoch FROM processed_at)::float8 AS at"
            " FROM processed_events WHERE consumer = $1",
            CONSUMER,
        ):
            ev.applied[r["event_id"]] = r["at"]
        ev.dead_events = {
            r[0]
            for r in await conn.fetch(
                "SELECT DISTINCT event_id::text FROM dead_letters WHERE event_id IS NOT NULL"
            )
        }
        ev.dead_letters = await conn.fetchval("SELECT count(*) FROM dead_letters")
        ev.poison_found = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT m, min(extract(epoch FROM d.failed_at))::float8"
                " FROM unnest($1::text[]) AS m JOIN dead_letters d"
                " ON position(convert_to(m, 'UTF8') IN d.raw) > 0 GROUP BY m",
                list(markers),
            )
        }
        ev.notes = [
            Note(**dict(r))
            for r in await conn.fetch(
                "SELECT notification_id::text, alert_id::text, child_id, step_key, contact_id,"
                " channel, status, extract(epoch FROM created_at)::float8 AS created_at,"
                " failover_of::text,"
                " extract(epoch FROM unreachable_told_at)::float8 AS unreachable_told_at"
                " FROM notifications"
            )
        ]
        ev.steps = [
            Step(**dict(r))
            for r in await conn.fetch(
                "SELECT s.alert_id::text, a.child_id, s.step_key, s.status,"
                " extract(epoch FROM s.due_at)::float8 AS due_at,"
                " extract(epoch FROM s.decided_at)::float8 AS decided_at,"
                " coalesce(s.policy, a.policy) AS policy"
                " FROM alert_steps s JOIN alerts a USING (alert_id)"
            )
        ]
        ev.overdue = [
            (r["alert_id"], r["child_id"], r["late"])
            for r in await conn.fetch(
                "SELECT alert_id::text, child_id,"
                " extract(epoch FROM now() - next_due_at)::float8 AS late FROM alerts"
                " WHERE status <> 'resolved' AND next_due_at < now() - make_interval(secs => $1)",
                OVERDUE_GRACE_S,
            )
        ]
        ev.clock_failures = await conn.fetchval(
            "SELECT coalesce(sum(clock_failures), 0) FROM alerts"
        )
    return ev


def poison_missing(
    injected: Mapping[str, float], found: Mapping[str, float], broker_restarts: list[float]
) -> tuple[list[str], list[str]]:
    """Poison records never dead-lettered: (missing, lost with the broker's log). A record
    produced before a broker restart may have gone with the log unread; it never passed
    through the outbox, so nothing could publish it again: that one is not the system's loss."""
    missing, with_log = [], []
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
    """I3: (alert, step, contact, channel) keys whose SMS the provider received more than once."""
    return sorted(
        (
            (n.key, sms_per_note[n.notification_id])
            for n in notes
            if sms_per_note[n.notification_id] > 1
        ),
        key=lambda kv: str(kv[0]),
    )


def calls_twice(notes: list[Note], calls_per_note: Counter) -> list[tuple[tuple, int]]:
    """I3 for voice: (alert, step, contact) keys whose call the provider received more than once."""
    voice = [n for n in notes if n.channel == "voice"]
    return sent_twice(voice, calls_per_note)


def unmatched_sms(notes: list[Note], sms_per_note: Counter) -> int:
    """SMS at the provider naming no notification row: sent for something nobody recorded."""
    known = {n.notification_id for n in notes}
    return sum(c for nid, c in sms_per_note.items() if nid not in known)


def mail_duplicates(mail_per_id: Counter) -> int:
    """Mails received more than once under one Message-ID (allowed after a crash mid-send)."""
    return sum(c - 1 for c in mail_per_id.values() if c > 1)


@dataclass(frozen=True)
class Window:
    """A fault as it happened: label, and its start and end (epoch seconds)."""

    label: str
    kind: str
    start: float
    end: float
    detail: str = ""


@dataclass(frozen=True)
class Late:
    """How late one step was decided, and the fault it is put down to (None: no fault)."""

    step: Step
    due: float
    fault: str | None
    late_s: float


def _attributed(due: float, windows: list[Window]) -> Window | None:
    """The last fault that began before `due` and ended at most ATTRIBUTION_S before it."""
    found = None
    for w in windows:
        if w.start <= due <= w.end + ATTRIBUTION_S:
            found = w
    return found


def _step_due(
    s: Step,
    absence_at: Mapping[str, float],
    located_at: Mapping[str, float],
    since: Mapping[str, float],
    not_before: Mapping[str, float],
) -> float:
    """When a step was due as the harness sees it: its due time, or when its report was
    accepted if later (a late report's steps are due at once), or when its child's risk was
    raised or a deploy added it (a catch-up is due then), if it was decided after that."""
    cause = located_at if s.step_key == "stand_down" else absence_at
    due = max(s.due_at, cause.get(s.child_id, s.due_at))
    for moment in (since.get(s.child_id), not_before.get(s.step_key)):
        if moment is not None and s.decided_at >= moment:
            due = max(due, moment)
    return due


def step_lateness(
    steps: list[Step],
    windows: list[Window],
    absence_at: Mapping[str, float],
    located_at: Mapping[str, float],
    since: Mapping[str, float] | None = None,
    not_before: Mapping[str, float] | None = None,
) -> list[Late]:
    """I2 for each decided step: its lateness from its due time, or from the end of a fault
    that held the clock back (COVERS_STEPS) when it fell due in one."""
    out = []
    for s in steps:
        due = _step_due(s, absence_at, located_at, since or {}, not_before or {})
        window = _attributed(due, windows)
        if window is not None and window.kind in COVERS_STEPS:
            due = max(due, window.end)
        label = None if window is None else window.label
        out.append(Late(s, due, label, max(0.0, s.decided_at - due)))
    return out


def lateness(
    steps: list[Step],
    windows: list[Window],
    absence_at: Mapping[str, float],
    located_at: Mapping[str, float],
    since: Mapping[str, float] | None = None,
    not_before: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], float]:
    """The worst lateness of a step after each fault (by label), and outside any fault.

    A step belongs to the last fault that began before it was due and ended at most
    ATTRIBUTION_S before (see `step_lateness` for its due time)."""
    per_fault: dict[str, float] = {w.label: 0.0 for w in windows}
    steady = 0.0
    for late in step_lateness(steps, windows, absence_at, located_at, since, not_before):
        if late.fault is None:
            steady = max(steady, late.late_s)
        else:
            per_fault[late.fault] = max(per_fault[late.fault], late.late_s)
    return per_fault, steady


def applied_times(
    accepted_at: Mapping[str, float], event_of: Mapping[str, str], applied: Mapping[str, float]
) -> dict[str, float]:
    """Per child, when its event was applied (by the database's clock), else when accepted."""
    out = {}
    for child, at in accepted_at.items():
        out[child] = max(at, applied.get(event_of.get(child, ""), at))
    return out


def decided_late(lates: list[Late], bound_s: float = DECIDED_WITHIN_S) -> list[Late]:
    """I2's bound: steps decided more than `bound_s` after they were due."""
    return [late for late in lates if late.late_s > bound_s]


@dataclass(frozen=True)
class SmsLatency:
    """One SMS: from its step's due time to the provider's acceptance, and the fault (kind)
    its due time falls in, None outside every fault."""

    notification_id: str
    latency_s: float
    fault_kind: str | None


def sms_latency(
    notes: list[Note],
    steps: list[Step],
    first_sms: Mapping[str, float],
    windows: list[Window],
    absence_at: Mapping[str, float],
    located_at: Mapping[str, float],
    since: Mapping[str, float] | None = None,
    not_before: Mapping[str, float] | None = None,
) -> list[SmsLatency]:
    """Due → accepted by Twilio for every SMS the provider received. A message of no recorded
    step (a shared alert's) is due when its row was written."""
    by_step = {(s.alert_id, s.step_key): s for s in steps}
    out = []
    for n in notes:
        at = first_sms.get(n.notification_id)
        if n.channel != "sms" or at is None:
            continue
        step = by_step.get((n.alert_id or "", n.step_key))
        if step is not None:
            due = _step_due(step, absence_at, located_at, since or {}, not_before or {})
        else:
            due = n.created_at
        window = _attributed(due, windows)
        out.append(SmsLatency(n.notification_id, at - due, None if window is None else window.kind))
    return out


def first_received(received: Iterable[tuple[str | None, float]]) -> dict[str, float]:
    """The first time the provider received something for each notification id."""
    first: dict[str, float] = {}
    for nid, at in received:
        if nid is not None and (nid not in first or at < first[nid]):
            first[nid] = at
    return first


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 3)


def latency_split(rows: list[SmsLatency]) -> dict[str, dict[str, float | int | None]]:
    """SMS latency p50/p95 while the mail server was down and outside every fault: the two
    must look alike, since an email backlog may not hold back an SMS."""
    groups = {
        "during_smtp_faults": [r.latency_s for r in rows if r.fault_kind in faults.SMTP_KINDS],
        "outside_faults": [r.latency_s for r in rows if r.fault_kind is None],
    }
    return {
        name: {"n": len(v), "p50_s": _quantile(v, 0.5), "p95_s": _quantile(v, 0.95)}
        for name, v in groups.items()
    }


def sms_late(rows: list[SmsLatency], bound_s: float = SMS_WITHIN_S) -> list[SmsLatency]:
    """SMS at the provider more than `bound_s` after due, due outside every fault but the mail
    server's (its backlog is exactly what must not delay them)."""
    return [
        r
        for r in rows
        if r.latency_s > bound_s and (r.fault_kind is None or r.fault_kind in faults.SMTP_KINDS)
    ]


@dataclass(frozen=True)
class Probe:
    """A report sent right after a fault ended, to time the recovery."""

    label: str
    kind: str
    fault_end: float
    event_id: str
    child_id: str


def recovery(
    probes: list[Probe],
    applied: Mapping[str, float],
    first_sms: Mapping[str, float],
) -> dict[str, dict[str, float | None]]:
    """Per fault: seconds from its end until its probe was applied and until its first SMS."""
    out: dict[str, dict[str, float | None]] = {}
    for p in probes:
        at = applied.get(p.event_id)
        sms = first_sms.get(p.child_id)
        out[p.label] = {
            "applied_s": None if at is None else round(max(0.0, at - p.fault_end), 2),
            "first_sms_s": None if sms is None else round(max(0.0, sms - p.fault_end), 2),
        }
    return out


def first_sms_per_child(notes: list[Note], sms_at: Iterable[tuple[str | None, float]]) -> dict:
    """The first time the provider received an SMS for each child's notification."""
    child_of = {n.notification_id: n.child_id for n in notes}
    first: dict[str, float] = {}
    for nid, at in sms_at:
        child = child_of.get(nid or "")
        if child is not None and (child not in first or at < first[child]):
            first[child] = at
    return first


def per_kind(recovered: Mapping[str, Mapping[str, float | None]], kinds: Mapping[str, str]) -> dict:
    """The worst recovery of each kind of fault (None when some probe never recovered)."""
    worst: dict[str, dict[str, float | None]] = {}
    for label, figures in recovered.items():
        kind = kinds[label]
        agg = worst.setdefault(kind, {"applied_s": 0.0, "first_sms_s": 0.0})
        for name, value in figures.items():
            if value is None or agg[name] is None:
                agg[name] = None
            else:
                agg[name] = max(agg[name] or 0.0, value)
    return worst


def applied_late(
    accepted_at: Mapping[str, float],
    applied: Mapping[str, float],
    windows: list[Window],
    bound_s: float = 10.0,
) -> int:
    """I1's bound: events applied more than `bound_s` after they were accepted, or after the
    fault they were accepted in ended."""
    late = 0
    for event_id, at in accepted_at.items():
        done = applied.get(event_id)
        if done is None:
            continue
        start = at
        for w in windows:
            if w.start <= at <= w.end:
                start = max(start, w.end)
        if done - start > bound_s:
            late += 1
    return late


def sms_counts(sms: Iterable[tuple[str | None, float]]) -> Counter:
    """How many SMS the provider received per notification id."""
    return Counter(nid for nid, _ in sms if nid is not None)


def mail_counts(mails: Iterable[dict]) -> Counter:
    """How many mails the SMTP server received per Message-ID."""
    return Counter(m["message_id"] for m in mails)
