"""An absence published but not yet consumed when the broker loses its log still reaches the
clock: Postgres is the record, and the reconciler publishes it again to the new log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import migrate
from goldenhour.streams.handlers import CONSUMER
from tests.e2e.helpers import place_high_risk_child, report_absence, the_alert

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_stack() -> Iterator[EmbeddedStack]:
    """A broker of this test's own: it is restarted with its log lost."""
    with EmbeddedStack(durable=False) as s:
        yield s


async def test_an_absence_published_but_unconsumed_survives_a_broker_restart(
    own_stack: EmbeddedStack,
) -> None:
    dsn = own_stack.create_database(f"t_{uuid.uuid4().hex[:12]}")
    await migrate(dsn)
    config, keys = directory(scale=1.0)
    system = await DevSystem(own_stack.kafka_bootstrap, dsn, config, keys).start()
    conn = await asyncpg.connect(dsn)
    try:
        await place_high_risk_child(system)
        await eventually(
            lambda: conn.fetchval(
                "SELECT count(*) = 2 FROM processed_events WHERE consumer = $1", CONSUMER
            ),
            30,
            "the identification and placement to be applied",
            every=0.1,
        )
        system.parts["streams"].kill()
        absence = await report_absence(system)
        event_id = uuid.UUID(absence["event_id"])
        await eventually(
            lambda: conn.fetchval(
                "SELECT published_at IS NOT NULL FROM outbox WHERE event_id = $1", event_id
            ),
            30,
            "the absence to be published",
            every=0.1,
        )
        await asyncio.to_thread(own_stack.restart_kafka)  # the published absence is gone
        streams = system.restart("streams")
        await eventually(
            lambda: conn.fetchval(
                "SELECT true FROM worker_readiness WHERE part = 'streams' AND pid = $1", streams.pid
            ),
            60,
            "the streams worker to hold its partitions again",
            every=0.1,
        )
        # I1: applied within 10 s of the broker, the database and the worker being back.
        await eventually(
            lambda: conn.fetchval(
                "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2",
                CONSUMER,
                event_id,
            ),
            10,
            "the absence to be applied",
            every=0.1,
        )
        alert = await the_alert(system)
        assert alert["status"] == "open"
        assert await conn.fetchval(
            "SELECT publish_count >= 2 FROM outbox WHERE event_id = $1", event_id
        )
        assert await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'outbox.republished'"
        )
    finally:
        await conn.close()
        await system.stop()
