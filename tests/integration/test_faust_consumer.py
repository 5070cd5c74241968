"""The streams worker's seek back to its committed offsets, on the embedded broker: a partition
with no commit goes back to its start, so records fetched and dropped at a rebalance are read
again rather than skipped (the broker that lost its log, or a group's first minutes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from goldenhour.dev.stack import EmbeddedStack
from goldenhour.streams.faust_consumer import seek_committed_or_start


@pytest.fixture
async def fetched_past_five(
    stack: EmbeddedStack,
) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A group consumer that has read all five records of a new topic and committed none, as
    faust's has when a rebalance drops what it fetched."""
    tp = TopicPartition(f"seek-{uuid.uuid4().hex[:8]}", 0)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(tp.topic, f"r{n}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"seek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        read = 0
        while read < 5:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5 - read)
            read += len(batch.get(tp, []))
        assert await consumer.position(tp) == 5
        yield consumer, tp
    finally:
        await consumer.stop()


async def test_a_partition_never_committed_is_read_again_from_its_start(
    fetched_past_five: tuple[AIOKafkaConsumer, TopicPartition],
) -> None:
    consumer, tp = fetched_past_five
    # aiokafka's own seek leaves the position where fetching got to: five records lost.
    await consumer.seek_to_committed()
    assert await consumer.position(tp) == 5

    assert await seek_committed_or_start(consumer) == {tp: None}
    assert await consumer.position(tp) == 0
    batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
    assert [r.value for r in batch[tp]] == [b"r0"]


async def test_a_committed_partition_goes_back_to_its_commit(
    fetched_past_five: tuple[AIOKafkaConsumer, TopicPartition],
) -> None:
    consumer, tp = fetched_past_five
    await consumer.commit({tp: 2})

    assert await seek_committed_or_start(consumer) == {tp: 2}
    assert await consumer.position(tp) == 2
