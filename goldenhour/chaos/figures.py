"""Every check and figure of a chaos run, from what it gathered, as the report prints them."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from goldenhour.chaos import config as chaos_config
from goldenhour.chaos import (
    driver,
    faults,
    invariants,
    latency,
    lateness,
    providers,
    relay,
    takeover,
)
from goldenhour.chaos.evidence import Evidence
from goldenhour.chaos.faults import Window
from goldenhour.chaos.injector import Context
from goldenhour.chaos.latency import Probe
from goldenhour.chaos.options import Options
from goldenhour.chaos.readiness import Readiness
from goldenhour.chaos.relay import RelaySampler
from goldenhour.chaos.system import ChaosSystem
from goldenhour.chaos.takeover import Assignments
from goldenhour.infra.topics import PARTITIONS


@dataclass(frozen=True)
class Received:
    """What the providers received: the judge of sent, sent twice and never sent."""

    sms: list[providers.ReceivedSms]
    calls: list[providers.ReceivedCall]
    mails: list[dict]


@dataclass(frozen=True)
class Outcome:
    """What a run gathered: the system's evidence, the providers' and the harness's own."""

    opts: Options
    system: ChaosSystem
    ledger: driver.Ledger
    evidence: Evidence
    received: Received
    windows: list[Window]
    probes: list[Probe]
    ctx: Context
    readiness: Readiness
    settled: bool
    unfinished: int
    t0: float  # when the workload began, wall clock
    unsettled: dict[str, int] = field(default_factory=dict)
    assignments: Assignments | None = None
    relay: RelaySampler | None = None


def _takeovers(o: Outcome, due_times: lateness.DueTimes) -> dict[str, dict]:
    """Per fault that took a worker replica down: how soon the survivor held every partition
    and the group was whole again, and the timers due while the replica was down."""
    samples = o.assignments.samples if o.assignments is not None else []
    out = {}
    for w in o.windows:
        part = takeover.part_of(w)
        if part is None:
            continue
        t = takeover.takeover(samples, part, w, PARTITIONS)
        gap = takeover.gap_timers(o.evidence.steps, w, due_times)
        out[w.label] = {
            "takeover_s": t.survivor_s,
            "group_whole_s": t.whole_s,
            "timers_due_in_gap": gap.due,
            "gap_worst_late_s": gap.worst_late_s,
        }
    return out


_BY_KIND = (
    "n",
    "survivor_seen",
    "takeover_worst_s",
    "whole_seen",
    "group_whole_worst_s",
    "timers_due_in_gap",
    "gap_worst_late_s",
)


def _takeover_by_kind(per_fault: dict[str, dict], kinds: dict[str, str]) -> dict[str, dict]:
    """Per kind of fault: how many, how many times each takeover was seen and the worst of
    those seen, and the timers due while a replica was down."""
    out: dict[str, dict] = {}
    for label, f in per_fault.items():
        agg = out.setdefault(kinds[label], dict.fromkeys(_BY_KIND, 0))
        agg["n"] += 1
        for seen, worst, key in (
            ("survivor_seen", "takeover_worst_s", "takeover_s"),
            ("whole_seen", "group_whole_worst_s", "group_whole_s"),
        ):
            if f[key] is not None:
                agg[seen] += 1
                agg[worst] = max(agg[worst], f[key])
        agg["timers_due_in_gap"] += f["timers_due_in_gap"]
        agg["gap_worst_late_s"] = max(agg["gap_worst_late_s"], f["gap_worst_late_s"])
    return out


def figures(o: Outcome) -> dict:
    """Every check and figure of the run, as the report prints and writes them."""
    ev, ledger, windows, ctx, received = o.evidence, o.ledger, o.windows, o.ctx, o.received
    sms, mails, poisoned = received.sms, received.mails, ctx.poisoned
    per_note = invariants.sms_counts((s.notification_id, s.received_at) for s in sms)
    per_call = invariants.sms_counts((c.notification_id, c.received_at) for c in received.calls)
    per_mail = invariants.mail_counts(mails)
    owed = chaos_config.owed(o.system.config, o.system.reordered_config())
    lost = invariants.lost_events(ledger.accepted, ev.applied, ev.dead_events)
    unsent = invariants.never_sent(ev.notes, ev.steps, per_note, per_mail, owed, per_call)
    twice = invariants.sent_twice(ev.notes, per_note)
    calls_twice = invariants.calls_twice(ev.notes, per_call)
    untold = invariants.failed_untold(ev.notes)
    restarts = [w.start for w in windows if w.kind == faults.BROKER_RESTART]
    poison_missing, poison_with_log = invariants.poison_missing(poisoned, ev.poison_found, restarts)
    to_dead = [ev.poison_found[m] - at for m, at in poisoned.items() if m in ev.poison_found]
    # A step the deploy inserted is due, at the earliest, when the deploy begins: the first
    # streams replica restarted with it wakes the open alerts it is owed by.
    deployed = [w.start for w in windows if w.kind == faults.POLICY_REORDER]
    not_before = {chaos_config.inserted_key(o.opts.scale): min(deployed)} if deployed else {}
    # A step can be decided only once its report reached the clock: a report held up in the
    # broker is I1's lateness (applied within 10 s), not the timer's.
    due_times = lateness.DueTimes(
        lateness.applied_times(ledger.absences, ledger.absence_events, ev.applied),
        lateness.applied_times(ledger.located, ledger.located_events, ev.applied),
        lateness.applied_times(ctx.raised, ctx.raised_events, ev.applied),
        not_before,
    )
    lates = lateness.step_lateness(ev.steps, windows, due_times)
    late, steady = lateness.lateness(lates, windows)
    decided_late = lateness.decided_late(lates)
    first_sms_at = latency.first_received((s.notification_id, s.received_at) for s in sms)
    latencies = latency.sms_latency(ev.notes, ev.steps, first_sms_at, windows, due_times)
    sms_late = latency.sms_late(latencies)
    late_by_fault = Counter(x.fault for x in decided_late)
    first = latency.first_sms_per_child(ev.notes, ((s.notification_id, s.received_at) for s in sms))
    recovered = latency.recovery(o.probes, ev.applied, first)
    taken = _takeovers(o, due_times)
    rounds = o.relay.rounds if o.relay is not None else []
    relays_at_once = relay.at_once(rounds)
    relay_not_back = relay.not_back(rounds, windows)
    relay_back = {w.label: relay.back_after(rounds, w) for w in windows if relay.stops_an_api(w)}
    accepted_at = {e: a.at for e, a in ledger.accepted.items()}
    sms_times: dict[str, list[float]] = {}
    for s in sms:
        if s.notification_id is not None:
            sms_times.setdefault(s.notification_id, []).append(s.received_at)
    note_of = {n.key: n.notification_id for n in ev.notes}
    note_by_id = {n.notification_id: n for n in ev.notes}

    def when(at: float) -> str:
        """A moment as the run's clock and the fault last begun before it."""
        before = [w.label for w in windows if w.start <= at]
        return f"t={at - o.t0:.1f}s after {before[-1] if before else 'no fault'}"

    return {
        "seed": o.opts.seed,
        "duration_s": o.opts.duration_s,
        "children": o.opts.children,
        "settled": o.settled,
        # What was still in progress at the last look: a count here with settled false is a
        # system far behind (or stuck), not necessarily one that lost it.
        "at_settle_end": o.unsettled,
        "invariants": {
            "accepted_never_applied_nor_dead_lettered": len(lost),
            "due_messages_never_sent": len(unsent),
            "sms_sent_twice_for_one_step": len(twice),
            "poison_not_dead_lettered": len(poison_missing),
            "due_steps_never_decided": len(ev.overdue),
            "calls_placed_twice_for_one_step": len(calls_twice),
            "failed_messages_nobody_told": len(untold),
            "two_outbox_relays_active_at_once": len(relays_at_once),
            "outbox_relay_not_back_after_api_stop": len(relay_not_back),
        },
        # Measured, not promised: how late is load's as much as the system's, and a loaded
        # two-core machine must not turn a slow second into a broken promise.
        "timeliness": {
            "due_steps_decided_over_2s_late": len(decided_late),
            "sms_over_2s_late_outside_twilio_and_infra_faults": len(sms_late),
        },
        "figures": {
            "events_accepted": len(ledger.accepted),
            "requests_retried": ledger.retries,
            "requests_refused": len(ledger.refused),
            "requests_unanswered": len(ledger.unanswered),
            "acknowledgements": ledger.acks,
            "applied_over_10s_after_recovery": lateness.applied_late(
                accepted_at, ev.applied, windows
            ),
            "notifications": len(ev.notes),
            "notifications_by_status": dict(Counter(n.status for n in ev.notes)),
            "sms_received": len(sms),
            "calls_received": len(received.calls),
            "sms_latency": latency.latency_split(latencies),
            "dispatcher_clock_skew_s": o.system.skews,
            "risk_raised_children": len(ctx.raised),
            "sms_naming_no_notification": invariants.unmatched_sms(ev.notes, per_note),
            "sent_again_unverified": invariants.sent_unverified(ev.notes, per_note),
            "mails_received": len(mails),
            "mails_repeated_message_id": invariants.mail_duplicates(per_mail),
            "poison_injected": len(poisoned),
            "poison_lost_with_broker_log": len(poison_with_log),
            "poison_worst_s_to_dead_letter": round(max(to_dead, default=0.0), 2),
            "dead_letters": ev.dead_letters,
            "alert_clock_failures": ev.clock_failures,
            "worst_step_lateness_no_fault_s": round(steady, 2),
            "part_exits_not_caused_by_faults": [
                {"part": e.name, "pid": e.pid, "returncode": e.returncode}
                for e in o.system.unexpected_exits()
            ],
            "workload_tasks_unfinished": o.unfinished,
            "outbox_relay_rounds_by_active": relay.counts(rounds),
            "consumer_group_samples": len(o.assignments.samples) if o.assignments else 0,
            "takeover": _takeover_by_kind(taken, {w.label: w.kind for w in windows}),
            "harness_cpu_s": round(time.process_time(), 1),
        },
        "faults": [
            {
                "label": w.label,
                "kind": w.kind,
                "target": w.target,
                "lasted_s": round(w.end - w.start, 2),
                "worst_step_lateness_s": round(late.get(w.label, 0.0), 2),
                "steps_over_2s_late": late_by_fault.get(w.label, 0),
                "detail": w.detail,
                **recovered.get(w.label, {"applied_s": None, "first_sms_s": None}),
                "readyz": o.readiness.during(w),
                **taken.get(w.label, {}),
                **({"relay_back_s": relay_back[w.label]} if w.label in relay_back else {}),
            }
            for w in windows
        ],
        "recovery_by_kind": latency.per_kind(recovered, {w.label: w.kind for w in windows}),
        "examples": {
            "never_sent": [{"key": list(map(str, u.key)), "why": u.reason} for u in unsent[:10]],
            "sent_twice": [
                {
                    "key": list(map(str, k)),
                    "count": c,
                    "received": [when(at) for at in sorted(sms_times.get(note_of[k], []))],
                }
                for k, c in twice[:10]
            ],
            "lost": [
                {
                    "event_id": e,
                    "type": ledger.accepted[e].type,
                    "child_id": ledger.accepted[e].child_id,
                    "accepted": when(ledger.accepted[e].at),
                }
                for e in lost[:10]
            ],
            "part_exits": [
                {"part": x.name, "returncode": x.returncode, "at": when(x.at), "killed": x.killed}
                for x in o.system.exits
            ],
            "poison_missing": [
                {"marker": m, "injected": when(poisoned[m])} for m in poison_missing
            ],
            "calls_twice": [{"key": list(map(str, k)), "count": c} for k, c in calls_twice[:10]],
            "failed_untold": [list(map(str, n.key)) for n in untold[:10]],
            "decided_late": [
                {
                    "key": [x.step.alert_id, x.step.step_key],
                    "child_id": x.step.child_id,
                    "late_s": round(x.late_s, 2),
                    "fault": x.fault,
                    "due": when(x.due),
                }
                for x in sorted(decided_late, key=lambda x: -x.late_s)[:10]
            ],
            "sms_late": [
                {
                    "key": list(map(str, note_by_id[x.notification_id].key)),
                    "late_s": round(x.latency_s, 2),
                    "during": x.fault_kind,
                    "received": when(first_sms_at[x.notification_id]),
                }
                for x in sorted(sms_late, key=lambda x: -x.latency_s)[:10]
            ],
            "never_decided": [
                {"alert_id": a, "child_id": c, "late_s": round(s, 1)} for a, c, s in ev.overdue[:10]
            ],
            "relays_at_once": [
                {"at": when(r.at), "gauges": list(r.values)} for r in relays_at_once[:10]
            ],
            "relay_not_back": relay_not_back[:10],
            "refused": [list(map(str, r)) for r in ledger.refused[:10]],
            "unanswered": ledger.unanswered[:10],
            "not_settled_messages": [
                {
                    "key": list(map(str, n.key)),
                    "status": n.status,
                    "at_provider": (
                        per_note[n.notification_id]
                        if n.channel == "sms"
                        else per_call[n.notification_id]
                        if n.channel == "voice"
                        else per_mail[n.message_id]
                    ),
                }
                for n in ev.notes
                if n.status in ("pending", "sending")
            ][:10],
        },
    }
