"""`goldenhour chaos`: every part as its own process, two replicas of each worker, faults
injected at seeded random times while children go missing and come back; then the promises
are checked against what the API answered and what the providers received.

Exits 0 when every invariant holds, 1 when one fails, 2 when the run itself could not be done.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import structlog

from goldenhour.chaos import faults, report
from goldenhour.chaos.options import Options
from goldenhour.chaos.run import execute, say

DEFAULT_SEED = 20261122
# The settle ends as soon as everything is applied and sent; its bound only matters when the
# system is far behind (a loaded machine) or has lost something. The full run holds every kind
# of fault, Twilio storms of 1–3 real minutes among them; the quick one the infrastructure's,
# one short Twilio outage and a risk change.
QUICK = {"duration": 115.0, "children": 200, "settle": 90.0, "fault_minute": 5.0}
FULL = {"duration": 900.0, "children": 1500, "settle": 180.0, "fault_minute": 60.0}
# The sustained run: four minutes of children going missing at about two a second, while a
# replica of each worker is stopped (SIGTERM, then SIGKILL) and killed, again and again.
SCALE_OUT = {"duration": 240.0, "children": 480, "settle": 90.0, "fault_minute": 5.0}
SKEW_S = 70.0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="goldenhour chaos", description=__doc__)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"fault seed ({DEFAULT_SEED})")
    p.add_argument(
        "--duration", type=float, help="seconds of faults (900; quick 115; scale-out 240)"
    )
    p.add_argument("--children", type=int, help="children driven (1500; quick 200; scale-out 480)")
    p.add_argument(
        "--settle", type=float, help="most seconds to wait after the faults (180; quick 90)"
    )
    p.add_argument("--scale", type=float, default=0.5, help="seconds per policy minute (0.5)")
    p.add_argument(
        "--fault-minute",
        type=float,
        help="seconds per minute of a Twilio storm and of the failover settings (60; quick 5)",
    )
    p.add_argument(
        "--skew",
        type=float,
        default=SKEW_S,
        help=f"one dispatcher's clock this many seconds ahead, the other's behind ({SKEW_S:g})",
    )
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--quick", action="store_true", help="the short run: about three minutes")
    runs.add_argument(
        "--scale-out",
        action="store_true",
        help="the workers' replicas stopped and killed under load (240 s, 480 children)",
    )
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--keep-logs", action="store_true", help="keep every process's log")
    args = p.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    preset = QUICK if args.quick else SCALE_OUT if args.scale_out else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _log_to(path: Path) -> None:
    """The harness's own log lines, as JSON, into a file: stdout is for the table."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=path.open("a", encoding="utf-8")),
    )


async def _main(opts: Options, run_dir: Path) -> dict:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("the chaos run must run as an asyncio task")
    # SIGTERM stops the run as Ctrl-C does: the task is cancelled and every process is stopped.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await execute(opts, run_dir)


def main(argv: list[str]) -> int:
    """Run the chaos harness; the exit code says whether every invariant held."""
    args = parse(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="goldenhour-chaos-"))
    (run_dir / "logs").mkdir()
    _log_to(run_dir / "logs" / "harness.log")
    kinds = faults.QUICK_KINDS if args.quick else faults.KINDS
    if args.scale_out:
        kinds = faults.SCALE_OUT_KINDS
    opts = Options(
        args.seed,
        args.duration,
        args.children,
        args.settle,
        args.scale,
        args.fault_minute,
        args.skew,
        kinds,
        scale_out=args.scale_out,
    )
    say(
        f"goldenhour chaos: seed {opts.seed}, {opts.children} children,"
        f" {opts.duration_s:.0f} s of faults, dispatcher clocks ±{opts.skew_s:g} s;"
        f" logs in {run_dir / 'logs'}"
    )
    code = 2
    try:
        result = asyncio.run(_main(opts, run_dir))
        say(report.table(result))
        text = report.write_json(result, args.json)
        say(text)
        code = 1 if report.failed(result) else 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("chaos run stopped")
        code = 130
    except Exception as exc:
        say(f"chaos run could not be completed: {exc!r}")
        structlog.get_logger(__name__).exception("chaos.run_failed")
    finally:
        if code == 0 and not args.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            logs = sorted(str(p) for p in (run_dir / "logs").glob("*"))
            say("logs of every process:\n  " + "\n  ".join(logs))
        sys.stdout.flush()
    return code
