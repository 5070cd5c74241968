"""The one writer of `subscriptions` rows: the API creates and deletes them, the dispatcher
counts a webhook's failures and disables it at the limit, and sharing disables one whose
organisation has left the directory.

Each function takes the caller's connection, so it lands in the caller's transaction; auditing
the change is the caller's, beside its own reasons."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

_CREATE = """
INSERT INTO subscriptions (subscription_id, org_code, created_by, source_authorities,
    min_risk, exploitation_types, contacts, channels, webhook_url, webhook_secret,
    status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11)
RETURNING *
"""

# Only the organisation's own and not yet deleted: nothing otherwise.
_DELETE = """
UPDATE subscriptions SET status = 'deleted', deleted_at = now()
WHERE subscription_id = $1 AND org_code = $2 AND status <> 'deleted'
RETURNING subscription_id
"""

_RESET_FAILURES = """
UPDATE subscriptions SET consecutive_failures = 0
WHERE subscription_id = $1 AND consecutive_failures <> 0
"""

_COUNT_FAILURE = """
UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1
WHERE subscription_id = $1 AND status = 'active'
RETURNING *
"""

_DISABLE = """
UPDATE subscriptions SET status = 'disabled', disabled_at = $2 WHERE subscription_id = $1
"""

_DISABLE_ACTIVE = """
UPDATE subscriptions SET status = 'disabled', disabled_at = $2
WHERE subscription_id = $1 AND status = 'active'
"""


async def create(
    conn: asyncpg.Connection,
    *,
    subscription_id: uuid.UUID,
    org_code: str,
    created_by: str,
    source_authorities: list[str],
    min_risk: str,
    exploitation_types: list[str],
    contacts: list[str],
    channels: list[str],
    webhook_url: str | None,
    webhook_secret: str | None,
    at: datetime,
) -> asyncpg.Record:
    """A new active subscription; its row."""
    return await conn.fetchrow(
        _CREATE,
        subscription_id,
        org_code,
        created_by,
        source_authorities,
        min_risk,
        exploitation_types,
        contacts,
        channels,
        webhook_url,
        webhook_secret,
        at,
    )


async def delete(conn: asyncpg.Connection, subscription_id: uuid.UUID, org_code: str) -> bool:
    """Delete the organisation's subscription; False when it has none of that id (left)."""
    return await conn.fetchval(_DELETE, subscription_id, org_code) is not None


async def reset_failures(conn: asyncpg.Connection, subscription_id: uuid.UUID) -> None:
    """A delivery went through: the subscription's run of failures is over."""
    await conn.execute(_RESET_FAILURES, subscription_id)


async def count_failure(
    conn: asyncpg.Connection, subscription_id: uuid.UUID
) -> asyncpg.Record | None:
    """One more failure in the run of an active subscription; its row after, or None when it
    is no longer active."""
    return await conn.fetchrow(_COUNT_FAILURE, subscription_id)


async def disable(conn: asyncpg.Connection, subscription_id: uuid.UUID, at: datetime) -> None:
    """Disable the subscription as of `at`."""
    await conn.execute(_DISABLE, subscription_id, at)


async def disable_if_active(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, at: datetime
) -> None:
    """Disable the subscription as of `at` unless it is already disabled or deleted."""
    await conn.execute(_DISABLE_ACTIVE, subscription_id, at)
