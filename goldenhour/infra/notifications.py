"""Queueing messages for the dispatcher: the one writer of new `notifications` rows.

The escalation clock, shared alerts, the failover, subscription health and dead letters all
queue through `queue`, so a message is written one way wherever it comes from: pending, due at
`at`, and at most once per (alert, step, contact, channel), or per (step, contact, channel) for
an operations notice, which has no alert.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Outgoing:
    """One message to queue: to whom, by which channel, saying what."""

    step_key: str
    contact_id: str
    org_code: str
    channel: str
    address: str
    subject: str
    body: str
    subscription_id: uuid.UUID | None = None
    failover_of: uuid.UUID | None = None
    notification_id: uuid.UUID = field(default_factory=uuid.uuid4)


_QUEUE = """
INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id, org_code,
                           channel, address, subject, body, status, next_attempt_at, created_at,
                           subscription_id, failover_of)
SELECT n.id, $1, $2, n.step_key, n.contact_id, n.org_code, n.channel, n.address, n.subject,
       n.body, 'pending', $3, $3, n.subscription_id, n.failover_of
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[], $12::uuid[], $13::uuid[])
     AS n(id, step_key, contact_id, org_code, channel, address, subject, body, subscription_id,
          failover_of)
ON CONFLICT DO NOTHING
RETURNING notification_id, step_key, contact_id, channel
"""


async def queue(
    conn: asyncpg.Connection,
    alert_id: uuid.UUID | None,
    child_id: str | None,
    messages: Sequence[Outgoing],
    at: datetime,
) -> list[asyncpg.Record]:
    """Queue `messages` in one statement, inside the caller's transaction. Returns the rows
    written (`notification_id`, `step_key`, `contact_id`, `channel`); a message already queued
    is left as it is and not returned."""
    if not messages:
        return []
    return await conn.fetch(
        _QUEUE,
        alert_id,
        child_id,
        at,
        [m.notification_id for m in messages],
        [m.step_key for m in messages],
        [m.contact_id for m in messages],
        [m.org_code for m in messages],
        [m.channel for m in messages],
        [m.address for m in messages],
        [m.subject for m in messages],
        [m.body for m in messages],
        [m.subscription_id for m in messages],
        [m.failover_of for m in messages],
    )
