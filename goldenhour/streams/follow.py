"""An open alert goes where its child goes: to the child's current care home and authority.

The API moves a child's open alerts in the transaction that moves the child. The clock may open
an alert while a move commits; `current_placement` holds the placement it read until the alert
is written, so the move waits and then finds the alert, and `follow_child` puts right whatever
the worker sees differ when the move reaches it (an unplaced child has no placement to hold).
"""

from __future__ import annotations

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_CURRENT = (
    "SELECT placement_id, care_home FROM placements"
    " WHERE child_id = $1 AND ended_at IS NULL FOR SHARE"
)

_FOLLOW = """
UPDATE alerts a SET placement_id = COALESCE(p.placement_id, a.placement_id),
    care_home = COALESCE(p.care_home, a.care_home),
    local_authority = c.local_authority, updated_at = now()
FROM children c
LEFT JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL
WHERE c.child_id = $1 AND a.child_id = c.child_id AND a.status <> 'resolved'
  AND (a.local_authority IS DISTINCT FROM c.local_authority
       OR (p.placement_id IS NOT NULL AND (a.placement_id IS DISTINCT FROM p.placement_id
                                           OR a.care_home IS DISTINCT FROM p.care_home)))
RETURNING a.alert_id, a.care_home, a.local_authority
"""


async def current_placement(conn: asyncpg.Connection, child_id: str) -> asyncpg.Record | None:
    """The child's current placement, share-locked for the rest of the transaction."""
    row = await conn.fetchrow(_CURRENT, child_id)
    if row is None:
        # Waiting on a move ends with the old placement closed and the new one unseen by that
        # statement; a second statement sees (and holds) the new one.
        row = await conn.fetchrow(_CURRENT, child_id)
    return row


async def follow_child(conn: asyncpg.Connection, child_id: str) -> int:
    """Bring the child's open alerts to its current placement and authority; how many moved."""
    moved = await conn.fetch(_FOLLOW, child_id)
    for row in moved:
        log.warning(
            "alert.caught_up_with_child",
            alert_id=str(row["alert_id"]),
            child_id=child_id,
            care_home=row["care_home"],
            local_authority=row["local_authority"],
        )
    return len(moved)
