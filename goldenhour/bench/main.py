"""`goldenhour bench`: the whole system on the embedded stack, measured phase by phase.

Starts the embedded Kafka and PostgreSQL, the API, streams and dispatcher parts as processes, and
the local Twilio and SMTP servers as processes of their own; loads a directory of 33 authorities,
8 police forces and 300 care homes with 20,000 placed children; then runs the floor, timer,
recovery, latency and ingest phases, prints one table and writes results.json and latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import structlog

from goldenhour.bench import clocks, directory, floor, load, report, seed
from goldenhour.bench.procs import Profiler, Sampler, self_pid
from goldenhour.bench.providers import BenchSystem
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.logs import configure

log = structlog.get_logger(__name__)

FULL = dict(
    children=20_000,
    floor_n=2_000,
    timers=100_000,
    timer_spread=180.0,
    recovery_overdue=1_000,
    rate=50.0,
    duration=60.0,
    warmup=5.0,
    ingest_duration=60.0,
    recovery_down=6.0,
)
# The same timers pending at the same rate, fewer of them due, everything shorter.
QUICK = FULL | dict(
    children=5_000,
    floor_n=300,
    timers_due=5_000,
    timer_spread=10.0,
    recovery_overdue=200,
    duration=10.0,
    warmup=2.0,
    ingest_duration=10.0,
    recovery_down=4.0,
)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="goldenhour bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller and shorter: under 2 minutes")
    p.add_argument("--out", type=Path, default=Path("bench"), help="where results go (bench/)")
    p.add_argument("--rate", type=float, help="absence reports per second (50)")
    p.add_argument(
        "--low-rate",
        type=float,
        default=5.0,
        help="reports per second of a first, unsaturated latency run (5; 0: none)",
    )
    p.add_argument("--duration", type=float, help="seconds of reports counted (60; quick 10)")
    p.add_argument("--warmup", type=float, help="seconds sent first, not counted (5; quick 2)")
    p.add_argument("--ingest-duration", type=float, help="seconds of check-ins counted (60)")
    p.add_argument("--concurrency", type=int, default=32, help="check-in clients at once (32)")
    p.add_argument("--children", type=int, help="placed children seeded (20,000; quick 5,000)")
    p.add_argument("--timers", type=int, help="clocks pending (100,000)")
    p.add_argument(
        "--timers-due", type=int, help="of which fall due during the phase (all; quick 5,000)"
    )
    p.add_argument("--timer-spread", type=float, help="seconds they fall due over (180)")
    p.add_argument(
        "--raise-every",
        type=int,
        default=100,
        help="every n-th clock raises a welfare concern with SMS (100: 1%%)",
    )
    p.add_argument("--recovery-pending", type=int, default=10_000, help="clocks at the kill")
    p.add_argument("--recovery-overdue", type=int, help="of which overdue at restart (1,000)")
    p.add_argument("--floor-n", type=int, help="round trips per floor measurement (2,000)")
    p.add_argument(
        "--phases",
        default="floor,timers,recovery,latency,ingest",
        help="comma-separated subset, in this order",
    )
    p.add_argument(
        "--log",
        type=Path,
        default=Path(tempfile.gettempdir()) / "goldenhour-bench.log",
        help="where every process's log lines go (a few hundred MB on a full run)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the parts during each phase")
    # `goldenhour bench -- --quick` (the form an argparse REMAINDER needs) also works.
    args = p.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str]) -> int:
    """Run the benchmark; 0 when every phase ran (whatever the figures); a failure raises, after
    everything started has been stopped."""
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    configure(os.environ.get("GOLDENHOUR_LOG_LEVEL", "info"))  # JSON lines, as every part
    # The parts inherit stderr and log a JSON line per event: keep them (and our own logs) in a
    # file, at the level production would run at, and stdout for the progress and the table.
    terminal = os.dup(2)
    log_path = args.log
    with open(log_path, "wb") as log_file:
        os.dup2(log_file.fileno(), 2)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except BaseException:
        print(f"the bench failed; every process's log is in {log_path}", flush=True)
        raise
    finally:
        os.dup2(terminal, 2)
        os.close(terminal)


def _say(text: str) -> None:
    print(text, flush=True)  # stdout is the terminal; stderr went to the log file


_BUSY = """
SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')
        AND next_attempt_at <= now())
"""


async def _settle(db: asyncpg.Connection, timeout: float = 120.0) -> None:
    """Let the previous phase's work drain (events to relay, messages to send), so each phase
    starts from a quiet system and measures only its own load."""

    async def quiet() -> bool:
        return not await db.fetchval(_BUSY)

    with contextlib.suppress(AssertionError):  # busy still: the next phase measures it too
        await eventually(quiet, timeout, "the previous phase drained", every=0.5)


async def _run(args: argparse.Namespace) -> int:
    started = time.time()
    load_before = os.getloadavg()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    r: dict = {"mode": "quick" if args.quick else "full", "phase_s": {}, "phase_cpu_s": {}}
    r.update(floor={"kafka_ms": {}, "pg_ms": {}}, timers={}, recovery={}, latency={}, ingest={})
    r["latency_low"] = {}
    d = directory.build()
    r["directory"] = {
        "organisations": len(d.config["organisations"]),
        "care_homes": len(d.homes),
        "authorities": len(d.authorities),
        "children": args.children,
    }
    profiler = Profiler(args.out, args.profile)
    with EmbeddedStack() as stack:
        dsn = stack.create_database("bench")
        # A few keys post thousands of events a second: no per-key limit in the way.
        no_limit = {"GOLDENHOUR_API_RATE_LIMIT": "off"}
        system = BenchSystem(stack.kafka_bootstrap, dsn, d.config, d.keys, no_limit)

        def pids() -> dict[str, int]:
            parts = {name: p.pid for name, p in system.parts.items() if p.alive()}
            return {
                **parts,
                "broker": stack.pids["tansu"],
                "postgres": stack.pids["postgres"],
                **system.provider_pids(),
                **self_pid(),
            }

        sampler = Sampler(pids)
        _say(f"starting the stack and the parts (log: {args.log})")
        await system.start()
        sampler.start()
        db = await asyncpg.connect(dsn)
        try:
            t = time.time()
            placed = await seed.children(db, d, "GH", args.children, datetime.now(UTC))
            _say(f"seeded {len(placed):,} placed children in {time.time() - t:.1f} s")
            n_low = int(args.low_rate * (args.warmup + args.duration))
            n_latency = n_low + int(args.rate * (args.warmup + args.duration))
            for phase in phases:
                await _settle(db)
                t = time.time()
                sampler.sample()
                cpu_before = sampler.cpu_s
                _say(f"phase {phase} …")
                parts = {n: p.pid for n, p in system.parts.items()}
                if phase == "floor":
                    r["floor"]["kafka_ms"] = await floor.kafka_roundtrip(
                        stack.kafka_bootstrap, args.floor_n, 10
                    )
                    r["floor"]["pg_ms"] = await floor.pg_commit(dsn, args.floor_n)
                elif phase == "timers":
                    profiler.start(phase, parts, args.timer_spread)
                    r["timers"] = await clocks.timers(
                        system,
                        db,
                        d,
                        args.timers,
                        min(args.timers_due or args.timers, args.timers),
                        timedelta(seconds=args.timer_spread),
                        args.raise_every,
                    )
                elif phase == "recovery":
                    r["recovery"] = await clocks.recovery(
                        system,
                        db,
                        min(args.recovery_pending, args.timers),
                        args.recovery_overdue,
                        args.recovery_down,
                    )
                elif phase == "latency":
                    profiler.start(phase, parts, args.warmup + args.duration)
                    # First at a rate the machine keeps up with: the pipeline's own latency, with
                    # no queue; then at the rate.
                    if args.low_rate > 0:
                        r["latency_low"] = await load.latency(
                            system, db, d, placed[:n_low], args.low_rate, args.duration, args.warmup
                        )
                    r["latency"] = await load.latency(
                        system,
                        db,
                        d,
                        placed[n_low:n_latency],
                        args.rate,
                        args.duration,
                        args.warmup,
                    )
                elif phase == "ingest":
                    profiler.start(phase, parts, args.warmup + args.ingest_duration)
                    r["ingest"] = await load.ingest(
                        system,
                        db,
                        d,
                        placed[n_latency:],
                        args.ingest_duration,
                        args.warmup,
                        args.concurrency,
                    )
                else:
                    raise SystemExit(f"unknown phase {phase!r}")
                profiler.stop()
                r["phase_s"][phase] = round(time.time() - t, 1)
                sampler.sample()
                r["phase_cpu_s"][phase] = {
                    name: round(cpu - cpu_before.get(name, 0.0), 1)
                    for name, cpu in sampler.cpu_s.items()
                }
                log.info("bench.phase_done", phase=phase, seconds=r["phase_s"][phase])
        finally:
            profiler.stop()
            await sampler.stop()
            await db.close()
            await system.stop()
    r["peak_rss_mb"], r["cpu_s"] = sampler.peak_rss_mb, sampler.cpu_s
    r["wall_s"] = round(time.time() - started, 1)
    # Other work on the machine (a test suite, say) moves every figure: record how busy it was.
    r["loadavg"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    doc = report.results(r)
    report.write(args.out, doc, r)
    _say(report.render(doc))
    _say(f"wrote {args.out / 'results.json'} and {args.out / 'latency.png'}")
    return 0
