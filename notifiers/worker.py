"""`goldenhour dispatcher`: one dispatcher process."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import structlog

from infra.settings import Settings

log = structlog.get_logger(__name__)


def main(settings: Settings) -> int:
    """Consume, sweep and send until a signal stops it."""
    from infra.db import create_pool, migrate
    from infra.topics import Topics, ensure_topics
    from notifiers.channels import channels_from
    from notifiers.dispatcher import Dispatcher, run_dispatcher
    from notifiers.subscription_health import WebhookSubscriptions

    bootstrap, dsn = settings.require_servers()
    topics = Topics(settings.topic_prefix)

    async def run() -> None:
        await migrate(dsn)
        await ensure_topics(bootstrap, topics)
        pool = await create_pool(dsn, min_size=2, max_size=20, limits=settings.db_limits)
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

    asyncio.run(run())
    return 0
