"""`goldenhour dispatcher`: one dispatcher process wired together, and the health it reports.

The dispatcher's two loops (the Kafka fast path and the sweep) and the failover loop run until
a signal stops them; then the sends in flight finish and every connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import structlog

from goldenhour.infra.db import create_pool, migrate_or_wait
from goldenhour.infra.faults import patiently
from goldenhour.infra.health import Check, HealthServer
from goldenhour.infra.settings import Settings
from goldenhour.infra.topics import Topics, ensure_topics
from goldenhour.notifiers import db
from goldenhour.notifiers.base import Channel
from goldenhour.notifiers.channels import channels_from
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.failover import Failover
from goldenhour.notifiers.subscription_health import WebhookSubscriptions

log = structlog.get_logger(__name__)

# A database that stopped answering cannot hold the exit longer than this.
POOL_CLOSE_BOUND_S = 10.0


def health_checks(
    pool: asyncpg.Pool, dispatcher: Dispatcher, failover: Failover | None = None
) -> dict[str, Check]:
    """What /readyz asks: each check answers None when it holds, else why it does not."""

    async def database() -> str | None:
        await pool.fetchval(db.PING)
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


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a loop that must never stop; should it ever raise, start it again."""
    while True:
        try:
            await loop()
        except Exception as exc:  # the loops catch their own; this is the last net
            log.error("dispatcher.loop_restarted", loop=name, error=repr(exc)[:500])
        await asyncio.sleep(1.0)


async def run_dispatcher(
    dispatcher: Dispatcher, bootstrap: str, topics: Topics, group: str, settings: Settings
) -> None:
    """Consume and sweep until cancelled, then let the sends in flight finish (for a bounded
    time)."""

    def consume() -> Awaitable[None]:
        return dispatcher.consume(
            bootstrap,
            topics.notifications,
            group,
            settings.kafka_session_timeout_s,
            settings.fetch_max_wait_ms,
            config=settings.config,
            topics=topics,
        )

    tasks = [
        asyncio.create_task(_supervised("consume", consume), name="consume"),
        asyncio.create_task(_supervised("sweep", dispatcher.sweep_forever), name="sweep"),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        # Begun first: no send starts from here, and the bound counts from the signal, not
        # from whenever the consumer has left its group.
        stopping = asyncio.create_task(dispatcher.stop())
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await stopping


async def _close(pool: asyncpg.Pool, channels: dict[str, Channel]) -> None:
    for channel in channels.values():
        await channel.close()
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_BOUND_S)
    except TimeoutError:
        pool.terminate()


async def serve(settings: Settings) -> None:
    """Consume, sweep, fail over and send until SIGINT or SIGTERM."""
    bootstrap, dsn = settings.require_servers()
    topics = settings.topics
    # Started while the database or broker is down, the dispatcher waits for them.
    await patiently("database", lambda: migrate_or_wait(dsn, settings.migrate, settings.db_limits))
    await patiently("broker", lambda: ensure_topics(bootstrap, topics))
    pool = await patiently(
        "database",
        lambda: create_pool(
            dsn, min_size=2, max_size=settings.db_pool_max, limits=settings.db_limits
        ),
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
    failover = Failover(pool, settings.config, settings.ack_links)
    health = None
    if settings.health_port is not None:
        health = HealthServer(
            settings.health_port,
            health_checks(pool, dispatcher, failover),
            host=settings.health_host,
            metrics_tokens=settings.metrics_tokens,
        )
        await health.start()
    group = f"{settings.topic_prefix}-dispatcher"
    task = asyncio.create_task(run_dispatcher(dispatcher, bootstrap, topics, group, settings))
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
        await _close(pool, channels)
        log.info("dispatcher.stopped")


def main(settings: Settings) -> int:
    """Run one dispatcher process until a signal stops it."""
    asyncio.run(serve(settings))
    return 0
