"""Seeding what the benchmark does not measure, straight into Postgres, in a few statements.

Placed children are inserted as the API and the streams worker would have left them after
`child.identified` and `placement.started`: the child, its current placement, its last check-in
and its pending check-in clock (`watch_timers`, due interval × unit + grace after the check-in),
so the streams worker's state is consistent with the rows. Posting 40,000 events through the API
would take minutes and measure nothing the ingest phase does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from goldenhour.bench.directory import Directory

CHECKIN_INTERVAL_MIN = 60
# The default watchers: one unit is a minute, and 15 minutes of grace after the interval.
CHECKIN_DUE_AFTER = timedelta(minutes=CHECKIN_INTERVAL_MIN + 15)


def child_id(prefix: str, n: int) -> str:
    """A case reference of the form the product accepts (never a name): `GH-2026-000042`."""
    return f"{prefix}-2026-{n:06d}"


_CHILDREN = """
INSERT INTO children (child_id, local_authority, risk_level, exploitation_types, description,
                      identified_at, last_checkin_at)
SELECT $1 || '-2026-' || lpad(n::text, 6, '0'), ($3::text[])[1 + n % cardinality($3::text[])],
       'high', '{criminal}', '{"age_estimate": 15, "gender": "male", "languages": ["vi"]}',
       $4::timestamptz - interval '3 hours', $5
FROM generate_series(1, $2::int) AS n
"""

_PLACEMENTS = """
INSERT INTO placements (placement_id, child_id, care_home, risk, checkin_interval_minutes,
                        started_at)
SELECT $1 || '-2026-' || lpad(n::text, 6, '0') || '-P1', $1 || '-2026-' || lpad(n::text, 6, '0'),
       ($3::text[])[1 + n % cardinality($3::text[])], '{"level": "high"}', $5,
       $4::timestamptz - interval '2 hours'
FROM generate_series(1, $2::int) AS n
"""


async def children(
    conn: asyncpg.Connection, d: Directory, prefix: str, count: int, now: datetime
) -> list[tuple[str, str]]:
    """`count` high-risk children placed round-robin in the care homes, checked in 10 minutes
    ago, each with its pending check-in clock; returns (child_id, care_home) of each."""
    las = [d.home_authority[h] for h in d.homes]
    last_checkin = now - timedelta(minutes=10)
    async with conn.transaction():
        await conn.execute(_CHILDREN, prefix, count, las, now, last_checkin)
        await conn.execute(_PLACEMENTS, prefix, count, d.homes, now, CHECKIN_INTERVAL_MIN)
        await conn.execute(
            "INSERT INTO watch_timers (child_id, kind, due_at, status, armed_at)"
            " SELECT child_id, 'checkin', last_checkin_at + $2::interval, 'pending', $3"
            " FROM children WHERE child_id LIKE $1 || '-%'",
            prefix,
            CHECKIN_DUE_AFTER,
            now,
        )
    await conn.execute("ANALYZE children; ANALYZE placements; ANALYZE watch_timers")
    return [(child_id(prefix, n), d.homes[n % len(d.homes)]) for n in range(1, count + 1)]


async def checkin_clocks(
    conn: asyncpg.Connection,
    prefix: str,
    count: int,
    first_due: datetime,
    spread: timedelta,
    raise_every: int,
) -> None:
    """Move the check-in clocks of the first `count` seeded children to fall due evenly over
    `spread` from `first_due` (the others stay due in an hour and more). Every
    `raise_every`-th of them last checked in interval + grace before its clock runs out, so the
    clock raises a welfare concern (SMS and email to the care home manager and the social
    worker); the others checked in since, so their clock re-arms (the watcher's own "a check-in
    came after this clock was set" branch) with no message."""
    step = spread / max(1, count - 1)
    async with conn.transaction():
        await conn.execute(
            "UPDATE watch_timers t SET due_at = $2::timestamptz + (s.n - 1) * $3::interval"
            " FROM (SELECT $1 || '-2026-' || lpad(n::text, 6, '0') AS child_id, n"
            "       FROM generate_series(1, $4::int) AS n) s"
            " WHERE t.child_id = s.child_id AND t.kind = 'checkin' AND t.status = 'pending'",
            prefix,
            first_due,
            step,
            count,
        )
        await conn.execute(
            "UPDATE children c SET last_checkin_at = t.due_at - $2::interval FROM watch_timers t"
            " WHERE t.child_id = c.child_id AND t.kind = 'checkin' AND t.status = 'pending'"
            " AND c.child_id LIKE $1 || '-%' AND right(c.child_id, 6)::int % $3 = 0",
            prefix,
            CHECKIN_DUE_AFTER,
            raise_every,
        )
    await conn.execute("ANALYZE watch_timers")


_MISSING_ALERTS = """
INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,
                    last_seen_location, placement_id, care_home, local_authority, ack_code,
                    opened_at, next_due_at)
SELECT gen_random_uuid(), c.child_id, 'missing', 'open', 'high', 'high', d.at, 'bench',
       p.placement_id, p.care_home, c.local_authority, '9' || lpad(s.n::text, 8, '0'), $5, d.at
FROM generate_series(1, $2::int) AS s(n)
JOIN children c ON c.child_id = $1 || '-2026-' || lpad(s.n::text, 6, '0')
JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL,
LATERAL (SELECT CASE WHEN s.n <= $3 THEN $4::timestamptz + (s.n - 1) * $6::interval
                     ELSE $5::timestamptz + interval '2 hours' END AS at) AS d
"""


async def missing_alerts(
    conn: asyncpg.Connection,
    prefix: str,
    pending: int,
    overdue: int,
    first_due: datetime,
    spread: timedelta,
    now: datetime,
) -> None:
    """`pending` open missing-child alerts whose first step (0 min: SMS and email to police,
    duty manager and care home manager) is still to fire: `overdue` of them fall due evenly over
    `spread` from `first_due`, the others in two hours. The ack codes have 9 digits, which the
    product (4 to 8) never hands out."""
    step = spread / max(1, overdue - 1)
    await conn.execute(_MISSING_ALERTS, prefix, pending, overdue, first_due, now, step)
    await conn.execute("ANALYZE alerts")
