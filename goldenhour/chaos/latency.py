"""SMS latency and recovery after each fault: pure figures over a run's evidence and what the
Twilio server received.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from goldenhour.chaos import faults
from goldenhour.chaos.evidence import Note, Step
from goldenhour.chaos.faults import Window
from goldenhour.chaos.lateness import DueTimes, attributed

# An SMS is at the provider within this long of its due time whatever the email backlog.
SMS_WITHIN_S = 2.0


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
    due_times: DueTimes,
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
        due = n.created_at if step is None else due_times.of(step)
        window = attributed(due, windows)
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
