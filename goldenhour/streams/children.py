"""The one writer of `children` rows: the API's identification, transfer and a placement's risk,
and the worker's risk changes, check-ins and return-interview dates.

Each function takes the caller's connection, so it lands in the caller's transaction; auditing
the change is the caller's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_IDENTIFY = """
INSERT INTO children (child_id, local_authority, risk_level, exploitation_types,
                      description, identified_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (child_id) DO NOTHING
RETURNING child_id
"""

_TRANSFER = """
UPDATE children SET local_authority = $2, updated_at = now() WHERE child_id = $1
"""

_SET_RISK = """
UPDATE children SET risk_level = $2, updated_at = now() WHERE child_id = $1
"""

_CHANGE_RISK = """
UPDATE children SET risk_level = $2, updated_at = now()
WHERE child_id = $1 AND risk_level <> $2 RETURNING true
"""

_SEEN = """
UPDATE children SET last_checkin_at = GREATEST(last_checkin_at, $2) WHERE child_id = $1
"""

_SET_RETURN_INTERVIEW_DUE = """
UPDATE children SET return_interview_due_at = $2 WHERE child_id = $1
"""


async def identify(
    conn: asyncpg.Connection,
    child_id: str,
    local_authority: str,
    risk_level: str,
    exploitation_types: list[str],
    description: dict[str, Any],
    identified_at: datetime,
) -> bool:
    """Record a child identified for the first time; False when the child is known already."""
    created = await conn.fetchval(
        _IDENTIFY,
        child_id,
        local_authority,
        risk_level,
        exploitation_types,
        description,
        identified_at,
    )
    return created is not None


async def transfer(conn: asyncpg.Connection, child_id: str, local_authority: str) -> None:
    """The child is now in the care of `local_authority`."""
    await conn.execute(_TRANSFER, child_id, local_authority)


async def set_risk(conn: asyncpg.Connection, child_id: str, level: str) -> None:
    """The child's risk as a new placement assessed it."""
    await conn.execute(_SET_RISK, child_id, level)


async def change_risk(conn: asyncpg.Connection, child_id: str, level: str) -> bool:
    """The child's risk moved to `level`; False when it was that already (or the child is
    unknown)."""
    return bool(await conn.fetchval(_CHANGE_RISK, child_id, level))


async def seen(conn: asyncpg.Connection, child_id: str, at: datetime) -> None:
    """The child was seen at `at` (a check-in, or located back); an earlier time changes
    nothing."""
    await conn.execute(_SEEN, child_id, at)


async def set_return_interview_due(
    conn: asyncpg.Connection, child_id: str, due_at: datetime | None
) -> None:
    """When the child's return interview is due; None when none is."""
    await conn.execute(_SET_RETURN_INTERVIEW_DUE, child_id, due_at)
