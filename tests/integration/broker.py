"""The embedded broker from tests: topics of a test's own, the parts that publish to it run for
the length of a block, every record read until the wanted ones arrived, and the id of the
cluster a bootstrap address answers for."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.topics import Topics, ensure_topics

# How long one try of `consume_until` reads before it starts again from the topic's start.
READ_TRY_S = 5.0


class Runs(Protocol):
    """A part that runs until it is cancelled: the outbox relay, the reconciler."""

    def run(self) -> Coroutine[Any, Any, None]: ...


async def fresh_topics(stack: EmbeddedStack, prefix: str) -> Topics:
    """Every topic under a prefix no other test uses, created on the stack's broker."""
    topics = Topics(f"{prefix}-{uuid.uuid4().hex[:8]}")
    await ensure_topics(stack.kafka_bootstrap, topics)
    return topics


@contextlib.asynccontextmanager
async def running(*parts: Runs) -> AsyncIterator[list[asyncio.Task]]:
    """Each part's `run()` as a task, cancelled and awaited when the block ends."""
    tasks = [asyncio.create_task(p.run()) for p in parts]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def consume_until(
    stack: EmbeddedStack, topic: str, wanted: set[str], timeout: float = 30
) -> list[tuple[str, int, int]]:
    """Every record (payload, partition, offset) read until each wanted payload has arrived.

    Each try reads the topic from its start with a consumer of its own, for a few seconds: a
    broker coming back fails a try, and the next starts afresh."""

    async def read() -> list[tuple[str, int, int]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
        )
        seen: list[tuple[str, int, int]] = []
        try:
            await consumer.start()
            stop_at = asyncio.get_running_loop().time() + READ_TRY_S
            while asyncio.get_running_loop().time() < stop_at:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen += [(r.value.decode(), r.partition, r.offset) for r in records]
                if wanted <= {p for p, _, _ in seen}:
                    return seen
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        missing = wanted - {p for p, _, _ in seen}
        raise AssertionError(f"not yet read: {sorted(missing)}")

    return await eventually(read, timeout, f"{sorted(wanted)} on {topic}", 0.5, retry_errors=True)


async def broker_cluster(bootstrap: str) -> str:
    """The cluster id the broker at `bootstrap` answers with (a new one once it lost its log)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return (await admin.describe_cluster())["cluster_id"]
    finally:
        await admin.close()
