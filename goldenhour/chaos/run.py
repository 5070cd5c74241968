"""One chaos run: start the system, drive the workload, inject the faults, settle, check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import structlog

from goldenhour.chaos import config as chaos_config
from goldenhour.chaos import driver, faults, invariants, providers
from goldenhour.chaos.injector import Context, inject
from goldenhour.chaos.invariants import Probe, Window
from goldenhour.chaos.system import ChaosSystem

log = structlog.get_logger(__name__)

SETTLE_POLL_S = 2.0
READYZ_EVERY_S = 1.0


@dataclass(frozen=True)
class Options:
    """What `goldenhour chaos` was asked for."""

    seed: int
    duration_s: float
    children: int
    settle_s: float
    scale: float
    fault_minute_s: float = 60.0
    skew_s: float = 0.0
    kinds: tuple[str, ...] = faults.KINDS


def say(text: str) -> None:
    """A progress line on stdout (the parts' and the harness's logs go to files)."""
    print(text, flush=True)


class Readiness:
    """Samples every API's /readyz, so the report can say whether health told the truth."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.samples: list[tuple[float, str, int]] = []  # (at, url, status; 0 = no answer)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                for url in self.urls:
                    at = time.time()
                    try:
                        status = (await client.get(f"{url}/readyz")).status_code
                    except Exception:  # no answer is itself the sample
                        status = 0
                    self.samples.append((at, url, status))
                await asyncio.sleep(READYZ_EVERY_S)

    def during(self, w: Window) -> str:
        """What /readyz said while a fault lasted (and 3 s after): '503 seen', 'no answer',
        or '200 only'."""
        seen = {s for at, _, s in self.samples if w.start <= at <= w.end + 3.0}
        if any(s >= 500 for s in seen):
            return "503 seen"
        if 0 in seen:
            return "no answer"
        return "200 only" if seen else "not sampled"


async def _probe(api: driver.Api, window: Window, child_id: str, probes: list[Probe]) -> None:
    event_id = await driver.report_absence(api, child_id)
    if event_id is not None:
        probes.append(Probe(window.label, window.kind, window.end, event_id, child_id))


async def _settled(
    dsn: str, accepted: list[str], poisoned: dict[str, float], state: dict[str, int]
) -> bool:
    """Everything accepted is applied or dead-lettered, every message due is out, every poison
    record is dead-lettered and no alert is past due."""
    conn = await asyncpg.connect(dsn, timeout=5, command_timeout=20)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS e(id) WHERE NOT EXISTS"
            " (SELECT 1 FROM processed_events p WHERE p.consumer = $2 AND p.event_id = e.id)"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = e.id)",
            accepted,
            invariants.CONSUMER,
        )
        busy = await conn.fetchval(
            "SELECT (SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending'))"
            " + (SELECT count(*) FROM alerts WHERE next_due_at <= now())"
        )
        poison = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS m(id) WHERE NOT EXISTS"
            " (SELECT 1 FROM dead_letters d WHERE d.event_id = m.id"
            "  OR position(convert_to(m.id::text, 'UTF8') IN d.raw) > 0)",
            list(poisoned),
        )
    finally:
        await conn.close()
    state.update(events_waiting=waiting, messages_or_timers_due=busy, poison_waiting=poison)
    log.info("chaos.settling", **state)
    return waiting == 0 and busy == 0 and poison == 0


async def execute(opts: Options, run_dir: Path) -> dict:
    """Run the whole thing; the report's data. Every process started is stopped on the way out."""
    system = ChaosSystem(run_dir, opts.scale, opts.fault_minute_s, opts.skew_s)
    ledger = driver.Ledger()
    api: driver.Api | None = None
    alerts: driver.AlertIds | None = None
    readiness: Readiness | None = None
    tasks: list[asyncio.Task] = []
    try:
        t_start = time.monotonic()
        await system.start()
        say(f"system ready in {time.monotonic() - t_start:.1f} s: {', '.join(system.parts)}")
        api = driver.Api(system.api_urls, system.keys, ledger)
        await driver.subscribe_neighbour(api)
        plan = faults.schedule(
            opts.seed, opts.duration_s, system.part_names(), opts.kinds, opts.fault_minute_s
        )
        probe_children = [f"LBH-PROBE-{i:03d}" for i in range(len(plan))]
        await asyncio.gather(*(driver.place(api, c) for c in probe_children))
        stories = driver.plan_children(opts.seed, opts.children, opts.duration_s)
        alerts = driver.AlertIds(api)
        alerts.start()
        readiness = Readiness(system.api_urls)
        readiness.start()
        t0 = time.monotonic()
        t0_wall = time.time()
        tasks = [
            asyncio.create_task(driver.run_child(api, alerts, p, opts.scale, t0)) for p in stories
        ]
        windows: list[Window] = []
        probes: list[Probe] = []
        probing: list[asyncio.Task] = []
        ctx = Context([], {}, raise_risk=partial(driver.raise_risk, api))
        for i, fault in enumerate(plan):
            await asyncio.sleep(max(0.0, t0 + fault.at - time.monotonic()))
            active = [p.child_id for p in stories if p.start_at <= time.monotonic() - t0]
            ctx.children = active[-5:] or ["LBH-CX-0000"]
            ctx.at_risk = driver.missing_at_risk(ledger)
            label = f"{i + 1:02d} {fault.label}"
            at = time.monotonic() - t0
            window = await inject(system, fault, label, ctx)
            windows.append(window)
            detail = f", {window.detail}" if window.detail else ""
            say(f"  t={at:6.1f} s  {window.label} ({window.end - window.start:.1f} s{detail})")
            probing.append(asyncio.create_task(_probe(api, window, probe_children[i], probes)))
        await asyncio.sleep(max(0.0, t0 + opts.duration_s - time.monotonic()))
        say(f"faults over; settling (at most {opts.settle_s:.0f} s)")
        settle_by = time.monotonic() + opts.settle_s
        await asyncio.wait(tasks + probing, timeout=max(1.0, settle_by - time.monotonic()))
        poisoned = ctx.poisoned
        restarts = [w.start for w in windows if w.kind == faults.BROKER_RESTART]
        expected = {m: at for m, at in poisoned.items() if not any(r > at for r in restarts)}
        settled = False
        unsettled: dict[str, int] = {}
        while time.monotonic() < settle_by:
            with contextlib.suppress(Exception):  # the database may still be coming back
                if await _settled(system.database_url, list(ledger.accepted), expected, unsettled):
                    settled = True
                    break
            await asyncio.sleep(SETTLE_POLL_S)
        unfinished = sum(not t.done() for t in tasks + probing)
        say(f"settled: {settled} after {opts.settle_s - (settle_by - time.monotonic()):.1f} s")
        for t in tasks + probing:
            t.cancel()
        conn = await asyncpg.connect(system.database_url, timeout=10, command_timeout=60)
        try:
            evidence = await invariants.collect(conn, poisoned)
        finally:
            await conn.close()
        sms = await providers.received_sms(system.twilio_url)
        calls = await providers.received_calls(system.twilio_url)
        mails = providers.received_mail(system.mail_log)
        return _figures(
            opts,
            system,
            ledger,
            evidence,
            Received(sms, calls, mails),
            windows,
            probes,
            ctx,
            readiness,
            settled,
            unfinished,
            t0_wall,
            unsettled,
        )
    finally:
        for t in tasks:
            t.cancel()
        for component in (alerts, readiness):
            if component is not None:
                await component.stop()
        if api is not None:
            await api.close()
        await system.stop()


@dataclass(frozen=True)
class Received:
    """What the providers received: the judge of sent, sent twice and never sent."""

    sms: list[providers.ReceivedSms]
    calls: list[providers.ReceivedCall]
    mails: list[dict]


def _figures(
    opts: Options,
    system: ChaosSystem,
    ledger: driver.Ledger,
    ev: invariants.Evidence,
    received: Received,
    windows: list[Window],
    probes: list[Probe],
    ctx: Context,
    readiness: Readiness,
    settled: bool,
    unfinished: int,
    t0: float,
    unsettled: dict[str, int],
) -> dict:
    """Every check and figure of the run, as the report prints and writes them."""
    sms, mails, poisoned = received.sms, received.mails, ctx.poisoned
    per_note = invariants.sms_counts((s.notification_id, s.received_at) for s in sms)
    per_call = invariants.sms_counts((c.notification_id, c.received_at) for c in received.calls)
    per_mail = invariants.mail_counts(mails)
    owed = chaos_config.owed(system.config, system.reordered_config())
    lost = invariants.lost_events(ledger.accepted, ev.applied, ev.dead_events)
    unsent = invariants.never_sent(ev.notes, ev.steps, per_note, per_mail, owed, per_call)
    twice = invariants.sent_twice(ev.notes, per_note)
    calls_twice = invariants.calls_twice(ev.notes, per_call)
    untold = invariants.failed_untold(ev.notes)
    restarts = [w.start for w in windows if w.kind == faults.BROKER_RESTART]
    poison_missing, poison_with_log = invariants.poison_missing(poisoned, ev.poison_found, restarts)
    to_dead = [ev.poison_found[m] - at for m, at in poisoned.items() if m in ev.poison_found]
    # A step the deploy inserted is due, at the earliest, when the deploy is over.
    deployed = [w.end for w in windows if w.kind == faults.POLICY_REORDER]
    not_before = {chaos_config.inserted_key(opts.scale): min(deployed)} if deployed else {}
    # A step can be decided only once its report reached the clock: a report held up in the
    # broker is I1's lateness (applied within 10 s), not the timer's.
    timing = (
        invariants.applied_times(ledger.absences, ledger.absence_events, ev.applied),
        invariants.applied_times(ledger.located, ledger.located_events, ev.applied),
        invariants.applied_times(ctx.raised, ctx.raised_events, ev.applied),
        not_before,
    )
    late, steady = invariants.lateness(ev.steps, windows, *timing)
    lates = invariants.step_lateness(ev.steps, windows, *timing)
    decided_late = invariants.decided_late(lates)
    first_sms_at = invariants.first_received((s.notification_id, s.received_at) for s in sms)
    latencies = invariants.sms_latency(ev.notes, ev.steps, first_sms_at, windows, *timing)
    sms_late = invariants.sms_late(latencies)
    late_by_fault = Counter(x.fault for x in decided_late)
    first = invariants.first_sms_per_child(
        ev.notes, ((s.notification_id, s.received_at) for s in sms)
    )
    recovered = invariants.recovery(probes, ev.applied, first)
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
        return f"t={at - t0:.1f}s after {before[-1] if before else 'no fault'}"

    return {
        "seed": opts.seed,
        "duration_s": opts.duration_s,
        "children": opts.children,
        "settled": settled,
        # What was still in progress at the last look: a count here with settled false is a
        # system far behind (or stuck), not necessarily one that lost it.
        "at_settle_end": unsettled,
        "invariants": {
            "accepted_never_applied_nor_dead_lettered": len(lost),
            "due_messages_never_sent": len(unsent),
            "sms_sent_twice_for_one_step": len(twice),
            "poison_not_dead_lettered": len(poison_missing),
            "due_steps_never_decided": len(ev.overdue),
            "calls_placed_twice_for_one_step": len(calls_twice),
            "failed_messages_nobody_told": len(untold),
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
            "applied_over_10s_after_recovery": invariants.applied_late(
                accepted_at, ev.applied, windows
            ),
            "notifications": len(ev.notes),
            "notifications_by_status": dict(Counter(n.status for n in ev.notes)),
            "sms_received": len(sms),
            "calls_received": len(received.calls),
            "sms_latency": invariants.latency_split(latencies),
            "dispatcher_clock_skew_s": system.skews,
            "risk_raised_children": len(ctx.raised),
            "sms_naming_no_notification": invariants.unmatched_sms(ev.notes, per_note),
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
                for e in system.unexpected_exits()
            ],
            "workload_tasks_unfinished": unfinished,
            "harness_cpu_s": round(time.process_time(), 1),
        },
        "faults": [
            {
                "label": w.label,
                "kind": w.kind,
                "lasted_s": round(w.end - w.start, 2),
                "worst_step_lateness_s": round(late.get(w.label, 0.0), 2),
                "steps_over_2s_late": late_by_fault.get(w.label, 0),
                "detail": w.detail,
                **recovered.get(w.label, {"applied_s": None, "first_sms_s": None}),
                "readyz": readiness.during(w),
            }
            for w in windows
        ],
        "recovery_by_kind": invariants.per_kind(recovered, {w.label: w.kind for w in windows}),
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
                for x in system.exits
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
