"""The `episodes` table, rebuilt from the `events` table: the one writer of `episodes`.

Intake calls `rebuild_child` in the transaction that records each event bearing on episodes,
after it has locked the child's row, so two events of one child cannot both rebuild from a
snapshot missing the other. The rebuild replaces the child's rows wholesale: whatever arrived
late or twice, the rows are what `episodes.episodes` makes of the whole log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import asyncpg

from goldenhour.reports.episodes import Custody, Episode, Happened, custody_at, episodes

__all__ = ["BEARING", "EpisodeRow", "rebuild_all", "rebuild_child"]

BEARING = frozenset(
    {
        "child.identified",
        "child.transferred",
        "placement.started",
        "placement.ended",
        "absence.reported",
        "child.located",
        "return_interview.completed",
    }
)
"""The event types an episode, or whom it belongs to, is made of."""

_CHILD_EVENTS = """
SELECT event_id, type, occurred_at, data FROM events
WHERE child_id = $1 AND type = ANY($2::text[])
"""

_DELETE = "DELETE FROM episodes WHERE child_id = $1"

_INSERT = """
INSERT INTO episodes (child_id, started_at, ended_at, classification, local_authority, care_home,
    interview_at, reports, located_by, ssda903_id, date_of_birth, date_of_birth_estimated)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], $9::uuid, $10, $11, $12)
"""

_CHILDREN = "SELECT DISTINCT child_id FROM events WHERE type = 'absence.reported'"

_LOCK_CHILD = "SELECT 1 FROM children WHERE child_id = $1 FOR UPDATE"

EpisodeRow = tuple[Any, ...]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def rows_for(child_id: str, events: Iterable[asyncpg.Record]) -> list[EpisodeRow]:
    """The child's `episodes` rows from its events (as `_CHILD_EVENTS` reads them)."""
    happened: list[Happened] = []
    custody: list[Custody] = []
    identity: dict[str, Any] = {}
    homes: dict[str, str] = {}  # placement id -> care home
    placed_by_report: dict[str, str] = {}  # absence event id -> the placement it names
    for e in events:
        kind, data, event_id = e["type"], e["data"], str(e["event_id"])
        if kind == "absence.reported":
            if data.get("placement_id"):
                placed_by_report[event_id] = data["placement_id"]
            happened.append(
                Happened(
                    child_id,
                    "absence",
                    _time(data["last_seen_at"]),
                    event_id,
                    data.get("classification", "missing"),
                )
            )
        elif kind == "child.located":
            happened.append(Happened(child_id, "located", _time(data["located_at"]), event_id))
        elif kind == "return_interview.completed":
            happened.append(Happened(child_id, "interview", _time(data["completed_at"]), event_id))
        elif kind in ("child.identified", "child.transferred"):
            custody.append(Custody(e["occurred_at"], event_id, authority=data["local_authority"]))
            if kind == "child.identified":
                identity = data
        elif kind == "placement.started":
            homes[data["placement_id"]] = data["care_home"]
            custody.append(
                Custody(
                    e["occurred_at"],
                    event_id,
                    placement_id=data["placement_id"],
                    care_home=data["care_home"],
                )
            )
        elif kind == "placement.ended":
            custody.append(Custody(e["occurred_at"], event_id, placement_id=data["placement_id"]))
    born = identity.get("date_of_birth")
    out = []
    for episode in episodes(happened):
        holding = custody_at(custody, episode.start)
        if holding.authority is None:
            # No identification on record (it cannot be accepted without one): nobody to
            # report it, and nothing is invented.
            continue
        # The home whose placement a report names is the one the child went missing from,
        # even when its last-seen time is earlier than the placement was recorded.
        named = (homes.get(placed_by_report.get(r, "")) for r in episode.reports)
        care_home = next((h for h in named if h), None) or holding.care_home
        out.append(_row(episode, holding.authority, care_home, identity, born))
    return out


def _row(
    episode: Episode,
    authority: str,
    care_home: str | None,
    identity: dict[str, Any],
    born: str | None,
) -> EpisodeRow:
    return (
        episode.child_id,
        episode.start,
        episode.end,
        episode.classification,
        authority,
        care_home,
        episode.interview_at,
        list(episode.reports),
        episode.located_by,
        identity.get("ssda903_id"),
        date.fromisoformat(born) if born else None,
        bool(identity.get("date_of_birth_estimated", False)),
    )


async def rebuild_child(conn: asyncpg.Connection, child_id: str) -> int:
    """Replace the child's episodes with what its events make; the number of episodes."""
    events = await conn.fetch(_CHILD_EVENTS, child_id, sorted(BEARING))
    rows = rows_for(child_id, events)
    await conn.execute(_DELETE, child_id)
    if rows:
        await conn.executemany(_INSERT, rows)
    return len(rows)


async def rebuild_all(conn: asyncpg.Connection) -> tuple[int, int]:
    """Rebuild every child ever reported absent, one transaction each, holding the child's
    row as intake does, so it is safe beside a running system; (children, episodes)."""
    children = [r["child_id"] for r in await conn.fetch(_CHILDREN)]
    total = 0
    for child_id in children:
        async with conn.transaction():
            await conn.execute(_LOCK_CHILD, child_id)
            total += await rebuild_child(conn, child_id)
    return len(children), total
