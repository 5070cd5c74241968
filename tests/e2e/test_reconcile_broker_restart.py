"""An absence published but not yet consumed when the broker loses its log still reaches the
clock: Postgres is the record, and the reconciler publishes it again to the new log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from goldenhour.dev.devsystem import DevSystem, directory
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.infra.db import migrate
from goldenhour.streams.handlers import CONSUMER
from tests.e2e.conftest import place_high_risk_child, report_absence, the_alert

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_stack() -> Iterator[EmbeddedStack]:
    """A broker of this test's own: it is restarted with its log lost."""
    with EmbeddedStack(durable=False) as s:
        yield s


async def poll(conn: asyncpg.Connection, sql: str, *args: object, timeout: float, what: str):  # noqa: ANN201
    """The first truthy value of `sql`, polled; fail saying what did not happen in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await conn.fetchval(sql, *args)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


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
        await poll(
            conn,
            "SELECT count(*) = 2 FROM processed_events WHERE consumer = $1",
            CONSUMER,
            timeout=30,
            what="the identification and placement to be applied",
        )
        system.parts["streams"].kill()
        absence = await report_absence(system)
        event_id = uuid.UUID(absence["event_id"])
        await poll(
            conn,
            "SELECT published_at IS NOT NULL FROM outbox WHERE event_id = $1",
            event_id,
            timeout=30,
            what="the absence to be published",
        )
        await asyncio.to_thread(own_stack.restart_kafka)  # the published absence is gone
        streams = system.restart("streams")
        await poll(
            conn,
            "SELECT true FROM worker_readiness WHERE part = 'streams' AND pid = $1",
            streams.pid,
            timeout=60,
            what="the streams worker to hold its partitions again",
        )
        # I1: applied within 10 s of the broker, the database and the worker being back.
        await poll(
            conn,
            "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2",
            CONSUMER,
            event_id,
            timeout=10,
            what="the absence to be applied",
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
