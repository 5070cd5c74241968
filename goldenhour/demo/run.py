"""`goldenhour demo` (`make demo`): acceptance scenario 1 on the embedded stack, narrated.

A high-risk child (case LBH-2026-0042, identified by Hackney Children's Services) is placed at
Oak House; the home reports the child missing; the police control room, the duty manager and
the home's manager are told by SMS and email within a second, the duty manager and the control
room being whoever is on call by Hackney's and the Met's rotas (`GET /api/v1/rotas`: lbh-duty
and mps-cr on this week, lbh-edt-2 and mps-cr-2 off and never paged); nobody acknowledges, so
the 15-minute step reaches the missing persons unit and the head of service; the duty manager
replies `ACK <code>` by SMS; the later "unless acknowledged" step is skipped; the 60-minute step
tells the national missing persons unit; the child returns and everyone told is stood down.
A second act (`handover.py`) hands the duty manager's rota over during an open alert: another
child goes missing and lbh-duty is paged; before anyone acknowledges, lbh-dm1 puts lbh-edt-2 on
call in lbh-duty's place (an override through the rota API); the rota watch briefs lbh-edt-2 by
SMS and email; the next reminder reaches both; lbh-edt-2 acknowledges with the briefing's code;
both are stood down when the child is found, and the override is withdrawn. A third act
(`watchers.py`) shows the watchers acting before a child goes missing. The last (`figures.py`)
prints Hackney's golden-hour figures of all this and writes its SSDA903 Missing table.

Everything runs for real: Tansu (Kafka protocol) and PostgreSQL, the API, the golden-hour clock
and the dispatcher as their own processes, a local Twilio and a local SMTP server. One policy
minute lasts 0.2 s, so the golden hour passes in 12 s; the rota watch looks for handovers every
0.5 s. The timeline printed after act one is read back from the API (`GET /api/v1/alerts/{id}`),
the record every agency sees.

Exit status: 0 when every expectation held, 1 when one failed (the reason is printed), 2 when
the system could not be started, 130 on Ctrl-C. Everything started is stopped in every case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable

import httpx

from goldenhour.demo.checks import final_checks
from goldenhour.demo.feed import ProviderFeed
from goldenhour.demo.figures import the_figures
from goldenhour.demo.handover import handover
from goldenhour.demo.missing import fetch_alert, find_alert, scenario
from goldenhour.demo.narration import print_checks, say
from goldenhour.demo.outcome import ExpectationFailed, Run, StartFailed
from goldenhour.demo.people import SCALE, Directory
from goldenhour.demo.timeline import print_summary, print_timeline
from goldenhour.demo.watchers import WATCHERS, before_they_go_missing
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack, StackError
from goldenhour.infra.logs import configure
from goldenhour.services.passwords import set_password_at


def quiet_logs() -> None:
    """Keep this process's logs (and aiosmtpd's) out of the narration: warnings and worse only."""
    configure("warning")
    logging.getLogger().setLevel(logging.WARNING)  # basicConfig may already have run at info
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)


async def start(system: DevSystem) -> None:
    """Start the system's processes; StartFailed when they could not be."""
    say("Starting the API, the golden-hour clock (streams) and the dispatcher as processes...")
    try:
        await system.start()  # on failure it stops what it started
    except (RuntimeError, OSError) as exc:
        raise StartFailed(str(exc)) from exc


async def act_one(system: DevSystem, people: Directory, run: Run) -> ExpectationFailed | None:
    """Scenario 1, then its timeline, summary and checks; the expectation that failed, if any."""
    feed = ProviderFeed(system, people)
    narrating = asyncio.create_task(feed.run())
    failure: ExpectationFailed | None = None
    try:
        await scenario(system, run, feed)
    except ExpectationFailed as exc:
        failure = exc
    finally:
        narrating.cancel()
        await asyncio.gather(narrating, return_exceptions=True)
        feed.drain()

    alert = None
    if not run.alert_id and run.reported_at:
        try:
            run.alert_id = await find_alert(system, time.monotonic() + 2.0)
        except (ExpectationFailed, httpx.HTTPError):
            pass
    if run.alert_id:
        try:
            alert = await fetch_alert(system, run.alert_id)
        except (ExpectationFailed, httpx.HTTPError) as exc:
            failure = failure or ExpectationFailed(f"could not read the timeline: {exc}")
    if alert is not None:
        if failure is None:
            final_checks(run, alert, system, people)
        print_timeline(alert, people, run)
        print_summary(alert, people, run, system)
    return failure


async def later_act(number: int, act: Awaitable[None], run: Run) -> ExpectationFailed | None:
    """One act after the first, then its checks; the expectation that failed, if any."""
    failure: ExpectationFailed | None = None
    earlier_checks = len(run.checks)
    try:
        await act
    except (ExpectationFailed, httpx.HTTPError) as exc:
        failure = exc if isinstance(exc, ExpectationFailed) else ExpectationFailed(str(exc))
    print()
    print(f"CHECKS (act {number})", flush=True)
    print_checks(run.checks[earlier_checks:])
    failed = [name for name, ok, _ in run.checks[earlier_checks:] if not ok]
    if failure is None and failed:
        # The next act builds on this one (act 2 leaves the rota as it found it).
        failure = ExpectationFailed("; ".join(failed))
    return failure


async def run_demo(stack: EmbeddedStack, run: Run) -> int:
    config, keys = directory(scale=SCALE, extra_unless_ack_step=True, watchers=WATCHERS)
    people = Directory(config)
    system = DevSystem(
        stack.kafka_bootstrap,
        stack.database_url,
        config,
        keys,
        # The rota watch looks for handovers every half second, so act two's is briefed at once.
        {"GOLDENHOUR_LOG_LEVEL": "warning", "GOLDENHOUR_ROTA_WATCH_S": "0.5"},
    )
    t0 = time.monotonic()
    await start(system)
    try:
        pids = ", ".join(f"{name} {part.pid}" for name, part in system.parts.items())
        say(f"System ready in {time.monotonic() - t0:.1f} s ({pids}); API at {system.api_url}")
        say(
            f"Local Twilio at {system.twilio.base_url}, local SMTP on port {system.smtp.port}; "
            f"one policy minute = {SCALE} s, so the golden hour lasts {60 * SCALE:.0f} s"
        )
        password = secrets.token_urlsafe(12)
        await set_password_at(system.database_url, "lbh-dm1", password)
        console = system.api_url.replace("127.0.0.1", "localhost") + "/console"
        say(f"Console: {console} - sign in as lbh-dm1, password {password}")
        say()
        failure = await act_one(system, people, run)
        if failure is None:
            failure = await later_act(2, handover(system, people, run), run)
        if failure is None:
            failure = await later_act(3, before_they_go_missing(system, run), run)
        if failure is None:
            failure = await later_act(4, the_figures(system, run), run)
        if os.environ.get("GOLDENHOUR_DEMO_STAY"):
            say(f"Still running for the console at {console} (lbh-dm1 / {password}); Ctrl-C stops.")
            await asyncio.Event().wait()
    finally:
        print(flush=True)
        say("Stopping the API, the clock, the dispatcher and the local Twilio and SMTP servers...")
        await system.stop()
    if failure is not None:
        raise failure
    failed = [name for name, ok, _ in run.checks if not ok]
    if failed:
        raise ExpectationFailed("; ".join(failed))
    return 0


def main() -> int:
    """Run acceptance scenario 1 on the embedded stack; 0 when every expectation held."""
    quiet_logs()
    run = Run()
    print(
        "GOLDEN HOUR demo - acceptance scenario 1: a high-risk child goes missing from placement",
        flush=True,
    )
    print("=" * 88, flush=True)
    try:
        say("Starting the embedded Kafka-protocol broker (Tansu) and PostgreSQL...")
        t0 = time.monotonic()
        with EmbeddedStack(durable=False) as stack:
            took = time.monotonic() - t0
            say(f"Broker at {stack.kafka_bootstrap}; PostgreSQL ready; took {took:.1f} s")
            code = asyncio.run(run_demo(stack, run))
            say("Stopping the broker and PostgreSQL...")
        say(f"Everything stopped. Wall time {time.monotonic() - run.started:.1f} s.")
        print("RESULT: PASS - every expectation of the four acts held.", flush=True)
        return code
    except KeyboardInterrupt:
        print(flush=True)
        say("Interrupted: every process the demo started has been stopped.")
        return 130
    except ExpectationFailed as exc:
        say("Everything stopped.")
        print(f"RESULT: FAIL - {exc}", flush=True)
        return 1
    except (StackError, StartFailed) as exc:
        print(f"RESULT: FAIL - the system could not be started: {exc}", flush=True)
        return 2
