"""`goldenhour`: the entry points of every part, and `run` to start them all."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading

import structlog
from pydantic import ValidationError

from goldenhour.contracts.config import ConfigError
from goldenhour.infra.logs import configure
from goldenhour.infra.settings import Settings

log = structlog.get_logger(__name__)


def _settings(twilio: bool = False) -> Settings:
    """The environment and the config file, refused at start with the bad entry named; with
    `twilio`, for a part that sends or receives through Twilio, its credentials too."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:  # names the missing or bad variable
        raise SystemExit(f"goldenhour: bad environment: {exc}") from None
    try:
        settings.config  # noqa: B018 - validate now, not on first use
    except ConfigError as exc:
        raise SystemExit(f"goldenhour: {exc}") from None
    if twilio:
        settings.require_twilio()
    return settings


def exit_when_orphaned(grace_s: float = 10.0) -> None:
    """End this part if its supervisor dies and its own graceful stop hangs.

    A supervisor's death sends the part SIGTERM (PDEATHSIG), but a graceful stop can wait on a
    broker or database that went down with the supervisor; past `grace_s` the part exits
    anyway, so no orphan is left behind. A part with no supervisor (PID 1 in a container) is
    left to its own signals."""
    parent = os.getppid()
    if parent <= 1:
        return

    # An Event's wait, not time.sleep: a part run with its wall clock shifted (libfaketime, to
    # prove the clocks of hosts need not agree) gets EINVAL from time.sleep's clock_nanosleep.
    never = threading.Event()

    def watch() -> None:
        while os.getppid() == parent:
            never.wait(0.5)
        never.wait(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def cmd_migrate(_: argparse.Namespace) -> int:
    from goldenhour.infra.db import migrate

    _, dsn = _settings().require_servers()
    applied = asyncio.run(migrate(dsn))
    print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    return 0


# How long the topics job waits for the broker to answer before it fails (and is run again).
TOPICS_TIMEOUT_S = 120.0


def cmd_topics(_: argparse.Namespace) -> int:
    """Create every topic that is missing with the configured layout; report the others."""
    from goldenhour.infra.faults import patiently
    from goldenhour.infra.topics import (
        TopicError,
        TopicReport,
        ensure_topics,
        min_insync_replicas,
    )

    settings = _settings()
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise SystemExit("goldenhour: GOLDENHOUR_KAFKA_BOOTSTRAP is not set")
    topics = settings.topics

    async def create() -> tuple[TopicReport, dict[str, str | None]]:
        async with asyncio.timeout(TOPICS_TIMEOUT_S):
            report = await patiently("broker", lambda: ensure_topics(bootstrap, topics))
            if topics.min_insync_replicas is None or not report.existing:
                return report, {}
            existing = list(report.existing)
            return report, await patiently(
                "broker", lambda: min_insync_replicas(bootstrap, existing)
            )

    try:
        report, insync = asyncio.run(create())
    except TopicError as exc:
        raise SystemExit(f"goldenhour: {exc}") from None
    except TimeoutError:
        raise SystemExit(
            f"goldenhour: the broker at {bootstrap} did not answer in {TOPICS_TIMEOUT_S:.0f}s"
        ) from None
    layout = f"{topics.partitions} partitions, replication factor {topics.replication_factor}"
    if topics.min_insync_replicas is not None:
        layout += f", min.insync.replicas={topics.min_insync_replicas}"
    for name in report.created:
        print(f"created: {name} ({layout})")
    for name, partitions in report.existing.items():
        print(f"exists: {name} ({partitions} partitions)")
    if not report.created:
        print("created: nothing (every topic exists)")
    for name, partitions in report.fewer_partitions(topics.partitions).items():
        print(
            f"warning: {name} has {partitions} partitions, fewer than the {topics.partitions}"
            " configured; left as it is (growing a keyed topic moves children to other"
            " partitions: grow it while the parts are stopped and the topic is drained)",
            file=sys.stderr,
        )
    for name, replicas in report.fewer_replicas(topics.replication_factor).items():
        print(
            f"warning: {name} has {replicas} replicas, fewer than the replication factor"
            f" {topics.replication_factor} configured; left as it is (raise it with the"
            " broker's kafka-reassign-partitions)",
            file=sys.stderr,
        )
    wanted = str(topics.min_insync_replicas)
    for name, value in insync.items():
        if value != wanted:
            print(
                f"warning: {name} has min.insync.replicas={value or 'the broker default'}, not"
                f" the {wanted} configured; left as it is (set it on the topic with the"
                " broker's kafka-configs --alter)",
                file=sys.stderr,
            )
    return 0


def cmd_api(_: argparse.Namespace) -> int:
    exit_when_orphaned()
    from goldenhour.services.server import serve

    return serve(_settings(twilio=True))


def cmd_streams(_: argparse.Namespace) -> int:
    exit_when_orphaned()
    from goldenhour.streams.worker import main as streams_main

    return streams_main(_settings())


def cmd_dispatcher(_: argparse.Namespace) -> int:
    exit_when_orphaned()
    from goldenhour.notifiers.app import main as dispatcher_main

    return dispatcher_main(_settings(twilio=True))


def cmd_dlq(args: argparse.Namespace) -> int:
    from goldenhour.services.dlq import main as dlq_main

    return dlq_main(_settings(), args)


def cmd_report(args: argparse.Namespace) -> int:
    from goldenhour.services.report_cli import main as report_main

    return report_main(_settings(), args)


def cmd_run(_: argparse.Namespace) -> int:
    """Every part as a child process, on the embedded stack unless both addresses are set."""
    from goldenhour.dev.supervisor import run_all

    return run_all(_settings(twilio=True))


def cmd_stack(args: argparse.Namespace) -> int:
    from goldenhour.dev.stack import stack_up_main

    if args.action != "up":
        raise SystemExit("usage: goldenhour stack up")
    return stack_up_main()


def cmd_demo(_: argparse.Namespace) -> int:
    from goldenhour.demo.run import main as demo_main

    return demo_main()


def cmd_users(args: argparse.Namespace) -> int:
    from goldenhour.services.passwords import set_password_main

    return set_password_main(_settings(), args.user_id, from_stdin=args.stdin)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the bench parses its own options
        from goldenhour.bench.main import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["chaos"]:  # so does the fault-injection harness
        from goldenhour.chaos.main import main as chaos_main

        return chaos_main(argv[1:])
    parser = argparse.ArgumentParser(prog="goldenhour", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="API and every worker, on the embedded stack unless configured")
    sub.add_parser("api", help="the HTTP API and the outbox relay")
    sub.add_parser("streams", help="the golden-hour clock (faust worker)")
    sub.add_parser("dispatcher", help="the SMS and email dispatcher")
    sub.add_parser("migrate", help="apply the database migrations")
    sub.add_parser("topics", help="create every Kafka topic with the configured layout")
    stack = sub.add_parser("stack", help="the embedded Kafka and PostgreSQL")
    stack.add_argument("action", choices=["up"])
    sub.add_parser("demo", help="acceptance scenario 1 on the embedded stack, with a timeline")
    users = sub.add_parser("users", help="manage console sign-in")
    users.add_argument("action", choices=["set-password"])
    users.add_argument("user_id", help="a user id of the directory")
    users.add_argument(
        "--stdin", action="store_true", help="read the password from standard input, not a prompt"
    )
    dlq = sub.add_parser("dlq", help="dead letters: records a consumer could never apply")
    dlq_sub = dlq.add_subparsers(dest="action", required=True)
    dlq_sub.add_parser("list", help="the dead letters not yet replayed")
    show = dlq_sub.add_parser("show", help="one dead letter, with its error and raw record")
    show.add_argument("id", type=int)
    replay = dlq_sub.add_parser("replay", help="apply again through the normal path, once mended")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all", action="store_true", help="every dead letter not yet replayed")
    discard = dlq_sub.add_parser(
        "discard", help="close one that can never be applied, with the reason (kept, audited)"
    )
    discard.add_argument("id", type=int)
    discard.add_argument("--reason", required=True, help="why it will never be applied")
    from goldenhour.services.report_cli import add_arguments as report_arguments

    report_arguments(sub.add_parser("report", help="the figures and the SSDA903 Missing table"))
    sub.add_parser("bench", help="measure latency, timers, ingest and recovery (see bench -h)")
    sub.add_parser("chaos", help="inject faults into a whole system and check the promises")
    args = parser.parse_args(argv)
    configure(os.environ.get("GOLDENHOUR_LOG_LEVEL", "info"))
    handler = {
        "run": cmd_run,
        "api": cmd_api,
        "streams": cmd_streams,
        "dispatcher": cmd_dispatcher,
        "migrate": cmd_migrate,
        "topics": cmd_topics,
        "stack": cmd_stack,
        "demo": cmd_demo,
        "users": cmd_users,
        "dlq": cmd_dlq,
        "report": cmd_report,
    }[args.command]
    return handler(args)
