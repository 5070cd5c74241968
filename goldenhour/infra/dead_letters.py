"""Dead letters: records a consumer can never apply, kept with their error until an operator
replays or discards them, and the operations contacts told of each.

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

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.infra import outbox
from goldenhour.infra.db import audit
from goldenhour.infra.notifications import Outgoing, queue

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

# A record read again (redelivered after a crash, or re-read from a partition's start after a
# rebalance) is the same letter: same consumer, same place in the log, same bytes.
_KEPT_ALREADY = """
SELECT 1 FROM dead_letters WHERE consumer = $1 AND topic = $2 AND kafka_partition = $3
  AND kafka_offset = $4 AND raw = $5
"""


async def record(
    conn: asyncpg.Connection, letter: DeadLetter, config: GoldenHourConfig, now: datetime
) -> int | None:
    """Keep the letter, audit it and tell the operations contacts, in the caller's transaction.

    Returns the dead letter's id, or None when this record is kept already, or this event
    already has an open one: a poison record read twice is counted, and told, once."""
    if letter.reason not in REASONS:
        raise ValueError(f"unknown dead-letter reason {letter.reason!r}")
    if letter.offset is not None and await conn.fetchval(
        _KEPT_ALREADY, letter.consumer, letter.topic, letter.partition, letter.offset, letter.raw
    ):
        return None
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
    step_key = f"operations:{key}"[:200]
    emails = [
        Outgoing(step_key, c.id, OPERATIONS_ORG, "email", str(c.email), subject, body)
        for c in config.operations
    ]
    return [r["notification_id"] for r in await queue(conn, None, None, emails, now)]


async def count_open(pool: asyncpg.Pool) -> int:
    """Dead letters not yet replayed; also sets the gauge."""
    n = await pool.fetchval("SELECT count(*) FROM dead_letters WHERE status = 'dead'")
    OPEN.set(n)
    return int(n)


# --- operating them: `goldenhour dlq` ---------------------------------------------------------


class Refused(Exception):
    """A dead letter that cannot be replayed or discarded: unknown, or closed already."""

    def __init__(self, dead_id: int, why: str) -> None:
        super().__init__(f"dead letter {dead_id}: {why}")
        self.dead_id = dead_id


async def list_open(conn: asyncpg.Connection, limit: int = 500) -> list[asyncpg.Record]:
    """Dead letters not yet replayed, oldest first."""
    return await conn.fetch(
        "SELECT * FROM dead_letters WHERE status = 'dead' ORDER BY id LIMIT $1", limit
    )


async def get(conn: asyncpg.Connection, dead_id: int) -> asyncpg.Record | None:
    """One dead letter, open or closed."""
    return await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", dead_id)


def _closed(letter: asyncpg.Record) -> dict[str, object]:
    """What the audit line of a letter replayed or discarded says of it."""
    return {
        "dead_letter_id": letter["id"],
        "consumer": letter["consumer"],
        "event_id": str(letter["event_id"]) if letter["event_id"] else None,
    }


async def _refusal(conn: asyncpg.Connection, dead_id: int) -> Refused:
    """Why a letter that is not open cannot be closed: unknown, or how it was closed."""
    known = await get(conn, dead_id)
    if known is None:
        return Refused(dead_id, "no such dead letter")
    if known["status"] == "discarded":
        return Refused(
            dead_id,
            f"already discarded at {known['discarded_at']:%Y-%m-%d %H:%M:%S} by"
            f" {known['discarded_by']}",
        )
    return Refused(
        dead_id,
        f"already replayed at {known['replayed_at']:%Y-%m-%d %H:%M:%S} by {known['replayed_by']}",
    )


async def replay(
    conn: asyncpg.Connection, dead_id: int, by: str, outbox_channel: str | None = None
) -> int:
    """Send the letter's record through the normal path again: an outbox row the relay
    publishes to the letter's topic, where its consumer applies it (idempotent on event_id).
    The row, the letter marked `replayed` and the audit line commit together, so a letter is
    replayed at most once; should the record fail again it comes back as a new dead letter.
    Returns the outbox row's id; raises Refused."""
    async with conn.transaction():
        letter = await conn.fetchrow(
            "UPDATE dead_letters SET status = 'replayed', replayed_at = now(), replayed_by = $2"
            " WHERE id = $1 AND status = 'dead' RETURNING *",
            dead_id,
            by,
        )
        if letter is None:
            raise await _refusal(conn, dead_id)
        key = (
            letter["key"].decode("utf-8", "replace")
            if letter["key"] is not None
            else letter["child_id"] or ""
        )
        outbox_id = await outbox.queue_replay(
            conn,
            letter["topic"],
            key,
            letter["raw"],
            letter["event_id"],
        )
        await audit(
            conn,
            "event.dead_letter_replayed",
            letter["child_id"],
            None,
            {**_closed(letter), "outbox_id": outbox_id},
            actor=f"operator:{by}",
        )
        if outbox_channel:
            await conn.execute(f"NOTIFY {outbox_channel}")  # delivered at commit
    log.info(
        "event.dead_letter_replayed",
        dead_letter_id=dead_id,
        event_id=str(letter["event_id"]) if letter["event_id"] else None,
        child_id=letter["child_id"],
        by=by,
    )
    return int(outbox_id)


async def discard(conn: asyncpg.Connection, dead_id: int, by: str, reason: str) -> None:
    """Close a letter that can never be applied, with the operator's reason: it leaves the open
    count and is kept, with the reason, beside the audit line. Raises Refused."""
    async with conn.transaction():
        letter = await conn.fetchrow(
            "UPDATE dead_letters SET status = 'discarded', discarded_at = now(), discarded_by = $2,"
            " discard_reason = $3 WHERE id = $1 AND status = 'dead' RETURNING *",
            dead_id,
            by,
            reason,
        )
        if letter is None:
            raise await _refusal(conn, dead_id)
        await audit(
            conn,
            "event.dead_letter_discarded",
            letter["child_id"],
            None,
            {**_closed(letter), "reason": reason},
            actor=f"operator:{by}",
        )
    log.warning(
        "event.dead_letter_discarded",
        dead_letter_id=dead_id,
        event_id=str(letter["event_id"]) if letter["event_id"] else None,
        child_id=letter["child_id"],
        by=by,
        reason=reason,
    )
