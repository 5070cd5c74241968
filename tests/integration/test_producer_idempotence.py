"""The idempotent producer is asked of the broker, not assumed: the embedded broker lacks it,
so every producer there is made with `acks=all` and without it, and still publishes."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from goldenhour.dev.stack import EmbeddedStack
from goldenhour.infra.producers import (
    INIT_PRODUCER_ID,
    broker_versions,
    producer_options,
    supports_idempotence,
)
from tests.integration.broker import consume_until, fresh_topics


async def test_the_embedded_broker_is_detected_without_the_idempotent_producer(
    stack: EmbeddedStack,
) -> None:
    # It lists InitProducerId, so the list alone would say yes ...
    versions = await broker_versions(stack.kafka_bootstrap)
    assert versions, "no broker answered ApiVersions"
    assert all(INIT_PRODUCER_ID in offered for offered in versions.values())
    # ... but asked for a producer id, it answers with an error: detected as unsupported.
    enabled, reason = await supports_idempotence(stack.kafka_bootstrap)
    assert not enabled
    assert "answered InitProducerId with" in reason


async def test_a_producer_made_with_the_detected_options_publishes(stack: EmbeddedStack) -> None:
    options = await producer_options(stack.kafka_bootstrap)
    assert options == {"acks": "all", "enable_idempotence": False}
    topics = await fresh_topics(stack, "idem")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, **options)
    marker = uuid.uuid4().hex
    await producer.start()
    try:
        await producer.send_and_wait(topics.intake, marker.encode(), key=b"LBH-2026-0042")
    finally:
        await producer.stop()
    await consume_until(stack, topics.intake, {marker})
