"""Dead letters: records a consumer can never apply, kept with their error until an operator
replays them, and the operations contacts told of each.

A record is dead-lettered only for a deterministic failure (it does not parse, has an unknown
`schema_version`, fails validation, or its handler raises on it every time while the database
answers). A transient failure is retried without limit and never comes here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from contracts.config import GoldenHourConfig
from infra.db import audit

log = structlog.get_logger(__name__)

DEAD_LETTERED = Counter(
    "goldenhour_dead_letters_total", "Records set aside as dead letters", ["consumer", "reason"]
)
OPEN = Gauge("goldenhour_dead_letters_open", "Dead letters not yet replayed (as last counted)")

REASONS = ("parse", "schema", "validation", "handler")
OPERATIONS_ORG = "OPERATIONS"


@dataclass(frozen=True)
class DeadLetter:
    """One record that could not be applied, as it came off the topic."""

    consumer: str
    topic: str
    raw: bytes
    reason: str
    error: str
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None
    event_id: uuid.UUID | None = None
    child_id: str | None = None


_INSERT = """
INSERT INTO dead_letters (consumer, topic, kafka_partition, kafka_offset, key, raw, event_id,
                          child_id, reason, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (consumer, event_id) WHERE status = 'dead' AND event_id IS NOT NULL DO NOTHING
RETURNING id
"""


async def record(
    conn: asyncpg.Connection, letter: DeadLetter, config: GoldenHourConfig, now: datetime
) -> int | None:
    """Keep the letter, audit it and tell the operations contacts, in the caller's transaction.

    Returns the dead letter's id, or None when this event already has an open one (a redelivery
    of the same poison event is not counted twice)."""
    if letter.reason not in REASONS:
        raise ValueError(f"unknown dead-letter reason {letter.reason!r}")
    dead_id = await conn.fetchval(
        _INSERT,
        letter.consumer,
        letter.topic,
        letter.partition,
        letter.offset,
        letter.key,
        letter.raw,
        letter.event_id,
        letter.child_id,
        letter.reason,
        letter.error[:2000],
    )
    if dead_id is None:
        return None
    await audit(
        conn,
        "event.dead_lettered",
        letter.child_id,
        None,
        {
            "dead_letter_id": dead_id,
            "consumer": letter.consumer,
            "reason": letter.reason,
            "event_id": str(letter.event_id) if letter.event_id else None,
            "error": letter.error[:500],
        },
        actor=f"system:{letter.consumer}",
    )
    await tell_operations(
        conn,
        config,
        f"dead_letter:{dead_id}",
        f"Golden Hour: a record could not be applied (dead letter {dead_id})",
        (
            f"The {letter.consumer} consumer could not apply a record from {letter.topic}"
            f" and set it aside as dead letter {dead_id}.\n\n"
            f"Reason: {letter.reason}\nError: {letter.error[:500]}\n"
            f"Event: {letter.event_id or 'unreadable'}\nCase: {letter.child_id or 'unknown'}\n\n"
            f"Look at it with `goldenhour dlq show {dead_id}`; once the cause is mended,"
            f" `goldenhour dlq replay {dead_id}` applies it through the normal path.\n"
        ),
        now,
    )
    DEAD_LETTERED.labels(letter.consumer, letter.reason).inc()
    log.error(
        "event.dead_lettered",
        dead_letter_id=dead_id,
        consumer=letter.consumer,
        reason=letter.reason,
        event_id=str(letter.event_id) if letter.event_id else None,
        child_id=letter.child_id,
        error=letter.error[:500],
    )
    return dead_id


async def tell_operations(
    conn: asyncpg.Connection,
    config: GoldenHourConfig,
    key: str,
    subject: str,
    body: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Queue one email to every operations contact, once per `key`; the dispatcher sends it.

    Returns the ids of the messages queued (none when the config names no operations contacts,
    or when this key was already told)."""
    ids = []
    for contact in config.operations:
        nid = uuid.uuid4()
        inserted = await conn.fetchval(
            "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
            " org_code, channel, address, subject, body, status, next_attempt_at, created_at)"
            " VALUES ($1, NULL, NULL, $2, $3, $4, 'email', $5, $6, $7, 'pending', $8, $8)"
            " ON CONFLICT DO NOTHING RETURNING true",
            nid,
            f"operations:{key}"[:200],
            contact.id,
            OPERATIONS_ORG,
            str(contact.email),
            subject,
            body,
            now,
        )
        if inserted:
            ids.append(nid)
    return ids


async def count_open(pool: asyncpg.Pool) -> int:
    """Dead letters not yet replayed; also sets the gauge."""
    n = await pool.fetchval("SELECT count(*) FROM dead_letters WHERE status = 'dead'")
    OPEN.set(n)
    return int(n)
