"""Each episode's facts read from Postgres, for `reports.figures` and the SSDA903 table.

An episode's alerts are the child's missing alerts anchored within it. The police were told
when the first message to a police force was delivered (an email when the mail server took it:
email can say no more).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from goldenhour.contracts.figures import Figures
from goldenhour.reports.figures import EpisodeFacts, figures
from goldenhour.reports.ssda903 import Spell, collection_year

__all__ = ["Scope", "episode_facts", "load_figures", "spells"]


@dataclass(frozen=True)
class Scope:
    """Whose episodes: those of `authorities` (None: every authority's), and of `care_home`'s
    children only when it is set."""

    authorities: frozenset[str] | None = None
    care_home: str | None = None


_SCOPED = """
SELECT * FROM episodes
WHERE {within}
    AND ($3::text[] IS NULL OR local_authority = ANY($3::text[]))
    AND ($4::text IS NULL OR care_home = $4)
ORDER BY child_id, started_at
"""
# Begun within [$1, $2); open at any time within it.
_BEGUN = _SCOPED.format(within="started_at >= $1 AND started_at < $2")
_OPEN = _SCOPED.format(within="started_at < $2 AND (ended_at IS NULL OR ended_at >= $1)")

_ALERTS = """
SELECT a.child_id, a.anchor_at, a.acknowledged_at,
    (SELECT min(COALESCE(n.delivered_at, CASE WHEN n.channel = 'email' THEN n.sent_at END))
       FROM notifications n WHERE n.alert_id = a.alert_id AND n.org_code = ANY($2::text[]))
       AS police_told_at,
    (SELECT count(*) FROM alert_steps s WHERE s.alert_id = a.alert_id AND s.status = 'fired'
       AND s.step_key !~ '^r[0-9]+$' AND s.due_at > a.anchor_at
       AND (a.acknowledged_at IS NULL OR s.decided_at < a.acknowledged_at)) AS unacknowledged
FROM alerts a
WHERE a.kind = 'missing' AND a.child_id = ANY($1::text[])
"""


def _midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(), tz)


async def _episodes(
    conn: asyncpg.Connection,
    scope: Scope,
    first: date,
    last: date,
    tz: ZoneInfo,
    query: str,
) -> list[asyncpg.Record]:
    authorities = sorted(scope.authorities) if scope.authorities is not None else None
    return await conn.fetch(
        query,
        _midnight(first, tz),
        _midnight(last + timedelta(days=1), tz),
        authorities,
        scope.care_home,
    )


async def episode_facts(
    conn: asyncpg.Connection,
    scope: Scope,
    first: date,
    last: date,
    tz: ZoneInfo,
    police: Collection[str],
) -> list[EpisodeFacts]:
    """The facts of the scope's episodes begun on local dates `first` to `last`."""
    rows = await _episodes(conn, scope, first, last, tz, _BEGUN)
    alerts = await conn.fetch(_ALERTS, sorted({r["child_id"] for r in rows}), sorted(police))
    out = []
    for r in rows:
        mine = [
            a
            for a in alerts
            if a["child_id"] == r["child_id"]
            and r["started_at"] <= a["anchor_at"]
            and (r["ended_at"] is None or a["anchor_at"] <= r["ended_at"])
        ]
        out.append(
            EpisodeFacts(
                child_id=r["child_id"],
                start=r["started_at"],
                end=r["ended_at"],
                classification=r["classification"],
                interview_at=r["interview_at"],
                police_told_at=min(
                    (a["police_told_at"] for a in mine if a["police_told_at"]), default=None
                ),
                first_ack_at=min(
                    (a["acknowledged_at"] for a in mine if a["acknowledged_at"]), default=None
                ),
                steps_fired_unacknowledged=sum(a["unacknowledged"] for a in mine),
            )
        )
    return out


async def load_figures(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    first: date,
    last: date,
    tz: ZoneInfo,
    police: Collection[str],
    now: datetime,
    authority: str | None,
) -> Figures:
    """The figures of the scope's episodes begun on local dates `first` to `last`."""
    facts = await episode_facts(conn, scope, first, last, tz, police)
    return figures(facts, first=first, last=last, tz=tz, now=now, authority=authority)


async def spells(conn: asyncpg.Connection, authority: str, year: int, tz: ZoneInfo) -> list[Spell]:
    """The authority's episodes open at any time in the collection year starting 1 April
    `year`, carried-in ones included."""
    first, last = collection_year(year)
    rows = await _episodes(conn, Scope(frozenset({authority})), first, last, tz, _OPEN)
    return [
        Spell(
            r["child_id"],
            r["ssda903_id"],
            r["date_of_birth"],
            r["classification"],
            r["started_at"],
            r["ended_at"],
        )
        for r in rows
    ]
