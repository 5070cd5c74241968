"""`goldenhour`: the entry points of every part, and `run` to start them all."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import structlog
from pydantic import ValidationError

from contracts.config import ConfigError
from infra.logs import configure, quiet_faust
from infra.settings import Settings

log = structlog.get_logger(__name__)


def _settings() -> Settings:
    """The environment and the config file, refused at start with the bad entry named."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:  # names the missing or bad variable
        raise SystemExit(f"goldenhour: bad environment: {exc}") from None
    try:
        settings.config  # noqa: B018 - validate now, not on first use
    except ConfigError as exc:
        raise SystemExit(f"goldenhour: {exc}") from None
    return settings


def cmd_migrate(_: argparse.Namespace) -> int:
    from infra.db import migrate

    _, dsn = _settings().require_servers()
    applied = asyncio.run(migrate(dsn))
    print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    return 0


def cmd_api(_: argparse.Namespace) -> int:
    import uvicorn

    from services.app import create_app

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_streams(_: argparse.Namespace) -> int:
    import faust

    from infra.topics import Topics, ensure_topics
    from streams.app import build_app

    settings = _settings()
    bootstrap, _ = settings.require_servers()
    asyncio.run(ensure_topics(bootstrap, Topics(settings.topic_prefix)))
    # faust keeps a data directory even with in-memory tables; keep it out of the working one.
    with tempfile.TemporaryDirectory(prefix="goldenhour-streams-") as datadir:
        app = build_app(settings, Path(datadir))
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
        worker.spinner = None  # it would write terminal escape codes to a log
        quiet_faust()
        worker.execute_from_commandline()
    return 0


def cmd_dispatcher(_: argparse.Namespace) -> int:
    from infra.db import create_pool, migrate
    from infra.topics import Topics, ensure_topics
    from notifiers.channels import channels_from
    from notifiers.dispatcher import Dispatcher, run_dispatcher
    from notifiers.subscription_health import WebhookSubscriptions

    settings = _settings()
    bootstrap, dsn = settings.require_servers()
    topics = Topics(settings.topic_prefix)

    async def main() -> None:
        await migrate(dsn)
        await ensure_topics(bootstrap, topics)
        pool = await create_pool(dsn, min_size=2, max_size=20)
        channels = channels_from(settings)
        dispatcher = Dispatcher(
            pool,
            channels,
            settings.public_url,
            repoll_after=timedelta(seconds=settings.repoll_after_s),
            lease=timedelta(seconds=settings.send_lease_s),
            webhooks=WebhookSubscriptions(pool, settings.config, settings.webhook_max_failures),
        )
        task = asyncio.create_task(
            run_dispatcher(
                dispatcher,
                bootstrap,
                topics.notifications,
                f"{settings.topic_prefix}-dispatcher",
                settings,
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        log.info("dispatcher.started")
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            for channel in channels.values():
                await channel.close()
            await pool.close()
            log.info("dispatcher.stopped")

    asyncio.run(main())
    return 0


def cmd_run(_: argparse.Namespace) -> int:
    """Every part as a child process, on the embedded stack unless both addresses are set."""
    from infra.supervisor import run_all

    return run_all(_settings())


def cmd_stack(args: argparse.Namespace) -> int:
    from infra.stack import stack_up_main

    if args.action != "up":
        raise SystemExit("usage: goldenhour stack up")
    return stack_up_main()


def cmd_demo(_: argparse.Namespace) -> int:
    from services.demo import main as demo_main

    return demo_main()


def cmd_users(args: argparse.Namespace) -> int:
    from services.passwords import set_password_main

    return set_password_main(_settings(), args.user_id, from_stdin=args.stdin)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the bench parses its own options
        from bench.main import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="goldenhour", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="API and every worker, on the embedded stack unless configured")
    sub.add_parser("api", help="the HTTP API and the outbox relay")
    sub.add_parser("streams", help="the golden-hour clock (faust worker)")
    sub.add_parser("dispatcher", help="the SMS and email dispatcher")
    sub.add_parser("migrate", help="apply the database migrations")
    stack = sub.add_parser("stack", help="the embedded Kafka and PostgreSQL")
    stack.add_argument("action", choices=["up"])
    sub.add_parser("demo", help="acceptance scenario 1 on the embedded stack, with a timeline")
    users = sub.add_parser("users", help="manage console sign-in")
    users.add_argument("action", choices=["set-password"])
    users.add_argument("user_id", help="a user id of the directory")
    users.add_argument(
        "--stdin", action="store_true", help="read the password from standard input, not a prompt"
    )
    sub.add_parser("bench", help="measure latency, timers, ingest and recovery (see bench -h)")
    args = parser.parse_args(argv)
    configure(os.environ.get("GOLDENHOUR_LOG_LEVEL", "info"))
    handler = {
        "run": cmd_run,
        "api": cmd_api,
        "streams": cmd_streams,
        "dispatcher": cmd_dispatcher,
        "migrate": cmd_migrate,
        "stack": cmd_stack,
        "demo": cmd_demo,
        "users": cmd_users,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
