"""The one writer of `outbox` rows, and of the `events` they carry: the API records an event with
its row, queues a derived event, and its relay and reconciler mark rows published or lost; a
dead letter's replay queues its record again.

Each function takes the caller's connection (or a pool, for a statement that stands alone), so
it lands in the caller's transaction; auditing and waking the relay are the caller's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from goldenhour.infra import tracing

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
"""A connection, or a pool that runs the statement on one of its own outside any transaction."""

# The event and its outbox row in one round trip; nothing when the id is known.
_RECORD_EVENT = """
WITH e AS (
    INSERT INTO events (event_id, type, child_id, occurred_at, received_at, org_code, user_id, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id
), o AS (
    INSERT INTO outbox (topic, key, payload, event_id, correlation_id)
    SELECT $9, $3, $10, $1, $11 FROM e
)
SELECT count(*) = 1 FROM e
"""

_QUEUE = "INSERT INTO outbox (topic, key, payload, correlation_id) VALUES ($1, $2, $3, $4)"

_QUEUE_REPLAY = """
INSERT INTO outbox (topic, key, payload, event_id, correlation_id) VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

# $2..$4: the ids the broker acknowledged, each with the partition and offset it was given.
_MARK_PUBLISHED = """
UPDATE outbox o SET published_at = now(), kafka_cluster = $1, kafka_partition = a.partition,
                    kafka_offset = a.kafka_offset, publish_count = o.publish_count + 1
FROM unnest($2::bigint[], $3::integer[], $4::bigint[]) AS a(id, partition, kafka_offset)
WHERE o.id = a.id
"""

# Still published and still not applied when the update runs: an event applied meanwhile is not
# sent again.
_UNPUBLISH_LOST = """
UPDATE outbox o SET published_at = NULL
WHERE o.id = ANY($1::bigint[]) AND o.published_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM processed_events p
                  WHERE p.consumer = $2 AND p.event_id = o.event_id)
RETURNING o.id, o.event_id
"""


async def record_event(
    conn: Conn,
    *,
    event_id: uuid.UUID,
    event_type: str,
    child_id: str,
    occurred_at: datetime,
    received_at: datetime,
    org_code: str,
    user_id: str,
    data: dict[str, Any],
    topic: str,
    payload: bytes,
) -> bool:
    """Record the event and queue `payload` to `topic` (keyed by the child) with it; False when
    the event id is known already, and nothing is written."""
    return await conn.fetchval(
        _RECORD_EVENT,
        event_id,
        event_type,
        child_id,
        occurred_at,
        received_at,
        org_code,
        user_id,
        data,
        topic,
        payload,
        tracing.current(),
    )


async def queue(conn: Conn, topic: str, key: str, payload: bytes) -> None:
    """Queue `payload` for the relay to publish to `topic` under `key`."""
    await conn.execute(_QUEUE, topic, key, payload, tracing.current())


async def queue_replay(
    conn: Conn, topic: str, key: str, payload: bytes, event_id: uuid.UUID | None
) -> int:
    """Queue a record again, with the event id it carries; the row's id."""
    return await conn.fetchval(_QUEUE_REPLAY, topic, key, payload, event_id, tracing.current())


async def mark_published(
    conn: Conn, cluster: str, ids: list[int], partitions: list[int], offsets: list[int]
) -> None:
    """The rows of `ids` acknowledged by the broker of `cluster`, each at its partition and
    offset."""
    await conn.execute(_MARK_PUBLISHED, cluster, ids, partitions, offsets)


async def unpublish_lost(conn: Conn, ids: list[int], consumer: str) -> list[asyncpg.Record]:
    """The rows of `ids` still published and not applied by `consumer`, marked for the relay to
    publish again; their ids and event ids."""
    return await conn.fetch(_UNPUBLISH_LOST, ids, consumer)
