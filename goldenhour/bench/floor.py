"""Phase 5: the raw floor of the same broker and database, without the product.

Kafka: one message produced (acks=all, idempotent where the broker supports it) and read
back by a consumer with the product's fetch wait, one at a time. Postgres: one INSERT in its own
transaction (autocommit), over TCP. Each is what one hop of the product costs at best.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from goldenhour.bench.stats import summary
from goldenhour.infra.producers import producer_options

WARMUP = 50


async def kafka_roundtrip(bootstrap: str, count: int, fetch_max_wait_ms: int) -> dict:
    """Produce → consume round trips on a fresh one-partition topic, p50/p95/p99/max in ms."""
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **await producer_options(bootstrap), linger_ms=0
    )
    # Assigned, not subscribed: a group join would wait for a rebalance and measure nothing.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_max_wait_ms)
    partition = TopicPartition(topic, 0)
    await producer.start()
    try:
        consumer.assign([partition])
        await consumer.start()
        try:
            await consumer.seek_to_end(partition)
            samples = []
            for i in range(WARMUP + count):
                started = time.perf_counter()
                await producer.send_and_wait(topic, value=b"x" * 200, key=str(i).encode())
                await consumer.getone(partition)
                if i >= WARMUP:
                    samples.append((time.perf_counter() - started) * 1000)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return summary(samples)


async def pg_commit(dsn: str, count: int) -> dict:
    """INSERT + COMMIT round trips, p50/p95/p99/max in ms."""
    conn = await asyncpg.connect(dsn)
    table = f"bench_floor_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, body text)")
        samples = []
        for i in range(WARMUP + count):
            started = time.perf_counter()
            await conn.execute(f"INSERT INTO {table} (body) VALUES ($1)", "x" * 200)
            if i >= WARMUP:
                samples.append((time.perf_counter() - started) * 1000)
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return summary(samples)
