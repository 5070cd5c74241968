"""One chaos run: start the system, drive the workload, inject the faults, settle, check."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import asyncpg
import structlog

from goldenhour.chaos import driver, evidence, faults, providers
from goldenhour.chaos.faults import Window
from goldenhour.chaos.figures import Outcome, Received, figures
from goldenhour.chaos.injector import Context, inject
from goldenhour.chaos.latency import Probe
from goldenhour.chaos.options import Options
from goldenhour.chaos.readiness import Readiness
from goldenhour.chaos.relay import RelaySampler
from goldenhour.chaos.system import ChaosSystem
from goldenhour.chaos.takeover import Assignments
from goldenhour.dev.waiting import eventually

log = structlog.get_logger(__name__)

SETTLE_POLL_S = 2.0


def say(text: str) -> None:
    """A progress line on stdout (the parts' and the harness's logs go to files)."""
    print(text, flush=True)


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
            evidence.CONSUMER,
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


async def _settle(
    dsn: str,
    ledger: driver.Ledger,
    poisoned: dict[str, float],
    state: dict[str, int],
    settle_by: float,
) -> bool:
    """Until the run has settled (see `_settled`) or `settle_by` (monotonic) has passed."""
    try:
        return await eventually(
            # The database may still be coming back: an error is "not yet".
            lambda: _settled(dsn, list(ledger.accepted), poisoned, state),
            max(0.0, settle_by - time.monotonic()),
            "the run settled",
            every=SETTLE_POLL_S,
            retry_errors=True,
        )
    except AssertionError:
        return False


async def execute(opts: Options, run_dir: Path) -> dict:
    """Run the whole thing; the report's data. Every process started is stopped on the way out."""
    system = ChaosSystem(run_dir, opts.scale, opts.fault_minute_s, opts.skew_s)
    ledger = driver.Ledger()
    api: driver.Api | None = None
    alerts: driver.AlertIds | None = None
    readiness: Readiness | None = None
    assignments: Assignments | None = None
    relay: RelaySampler | None = None
    tasks: list[asyncio.Task] = []
    try:
        t_start = time.monotonic()
        await system.start()
        say(f"system ready in {time.monotonic() - t_start:.1f} s: {', '.join(system.parts)}")
        api = driver.Api(system.api_urls, system.keys, ledger)
        await driver.subscribe_neighbour(api)
        targets = system.part_names()
        if opts.scale_out:
            targets = [t for t in targets if t.rsplit("-", 1)[0] in faults.WORKER_PARTS]
        plan = faults.schedule(
            opts.seed,
            opts.duration_s,
            targets,
            opts.kinds,
            opts.fault_minute_s,
            cover_parts=opts.scale_out,
        )
        probe_children = [f"LBH-PROBE-{i:03d}" for i in range(len(plan))]
        await asyncio.gather(*(driver.place(api, c) for c in probe_children))
        stories = driver.plan_children(opts.seed, opts.children, opts.duration_s)
        alerts = driver.AlertIds(api)
        alerts.start()
        readiness = Readiness(system.api_urls)
        readiness.start()
        assignments = Assignments(
            system.worker_urls(), system.shared_topics(), system.metrics_token
        )
        assignments.start()
        relay = RelaySampler(system.api_urls, system.metrics_token)
        relay.start()
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
        unsettled: dict[str, int] = {}
        settled = await _settle(system.database_url, ledger, expected, unsettled, settle_by)
        unfinished = sum(not t.done() for t in tasks + probing)
        say(f"settled: {settled} after {opts.settle_s - (settle_by - time.monotonic()):.1f} s")
        for t in tasks + probing:
            t.cancel()
        conn = await asyncpg.connect(system.database_url, timeout=10, command_timeout=60)
        try:
            found = await evidence.collect(conn, poisoned)
        finally:
            await conn.close()
        sms = await providers.received_sms(system.twilio_url)
        calls = await providers.received_calls(system.twilio_url)
        mails = providers.received_mail(system.mail_log)
        received = Received(sms, calls, mails)
        return figures(
            Outcome(
                opts,
                system,
                ledger,
                found,
                received,
                windows,
                probes,
                ctx,
                readiness,
                settled,
                unfinished,
                t0_wall,
                unsettled,
                assignments,
                relay,
            )
        )
    finally:
        for t in tasks:
            t.cancel()
        for component in (alerts, readiness, assignments, relay):
            if component is not None:
                await component.stop()
        if api is not None:
            await api.close()
        await system.stop()
