"""`goldenhour dispatcher`: one dispatcher process, and the health it reports."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from goldenhour.infra.settings import Settings

if TYPE_CHECKING:
    import asyncpg

    from goldenhour.infra.health import Check
    from goldenhour.notifiers.dispatcher import Dispatcher
    from goldenhour.notifiers.failover import Failover

log = structlog.get_logger(__name__)


def health_checks(
    pool: asyncpg.Pool, dispatcher: Dispatcher, failover: Failover | None = None
) -> dict[str, Check]:
    """What /readyz asks: each check answers None when it holds, else why it does not."""

    async def database() -> str | None:
        await pool.fetchval("SELECT 1")
        return None

    async def broker() -> str | None:
        if dispatcher.requests is None:
            return "the consumer has not started"
        return dispatcher.requests.broker_problem()

    async def partitions() -> str | None:
        if dispatcher.requests is None:
            return "the consumer has not started"
        return dispatcher.requests.assignment_problem()

    async def sweep() -> str | None:
        return dispatcher.sweep_problem()

    checks = {"database": database, "broker": broker, "partitions": partitions, "sweep": sweep}
    if failover is not None:

        async def failing_over() -> str | None:
            return failover.problem()

        checks["failover"] = failing_over
    return checks


def main(settings: Settings) -> int:
    """Consume, sweep and send until a signal stops it."""
    from goldenhour.infra.db import create_pool, migrate
    from goldenhour.infra.faults import patiently
    from goldenhour.infra.health import HealthServer
    from goldenhour.infra.topics import Topics, ensure_topics
    from goldenhour.notifiers.channels import channels_from
    from goldenhour.notifiers.dispatcher import Dispatcher, run_dispatcher
    from goldenhour.notifiers.failover import Failover
    from goldenhour.notifiers.subscription_health import WebhookSubscriptions

    bootstrap, dsn = settings.require_servers()
    topics = Topics(settings.topic_prefix)

    async def run() -> None:
        # Started while the database or broker is down, the dispatcher waits for them.
        await patiently("database", lambda: migrate(dsn))
        await patiently("broker", lambda: ensure_topics(bootstrap, topics))
        pool = await patiently(
            "database",
            lambda: create_pool(dsn, min_size=2, max_size=20, limits=settings.db_limits),
        )
        channels = channels_from(settings, pool)
        dispatcher = Dispatcher(
            pool,
            channels,
            settings.public_url,
            repoll_after=timedelta(seconds=settings.repoll_after_s),
            lease=timedelta(seconds=settings.send_lease_s),
            webhooks=WebhookSubscriptions(pool, settings.config, settings.webhook_max_failures),
        )
        # Calls and emails a contact whose SMS is stuck, reports contacts nobody reached.
        failover = Failover(pool, settings.config, settings.ack_links)
        health = None
        if settings.health_port is not None:
            health = HealthServer(
                settings.health_port,
                health_checks(pool, dispatcher, failover),
                metrics_token=settings.metrics_token,
            )
            await health.start()
        task = asyncio.create_task(
            run_dispatcher(
                dispatcher, bootstrap, topics, f"{settings.topic_prefix}-dispatcher", settings
            )
        )
        failing_over = asyncio.create_task(failover.run_forever())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        log.info("dispatcher.started", health_port=settings.health_port)
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            failing_over.cancel()
            await asyncio.gather(failing_over, return_exceptions=True)
            if health is not None:
                await health.stop()
            for channel in channels.values():
                await channel.close()
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except TimeoutError:
                pool.terminate()  # a database that stopped answering cannot hold the exit
            log.info("dispatcher.stopped")

    asyncio.run(run())
    return 0
