"""The alerts someone coming on call for a rota holds: open, not yet acknowledged, and paged
to the rota's role of its organisation. What a handover briefs and the console's rota page
lists first."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from goldenhour.contracts.alert_kinds import policy_for_alert
from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.contracts.rotas import Rota

# Open alerts not yet acknowledged whose steps have fired, with the keys of those steps.
_HELD = """
SELECT a.alert_id, a.child_id, a.kind, a.risk_level, a.anchor_at, a.ack_code,
       array_agg(s.step_key) AS fired
FROM alerts a JOIN alert_steps s ON s.alert_id = a.alert_id AND s.status = 'fired'
WHERE a.status = 'open' AND a.first_fired_at < $4
  AND ($3 OR a.local_authority = ANY($1::text[]) OR a.care_home = ANY($2::text[]))
GROUP BY a.alert_id ORDER BY a.anchor_at
"""


def _scope(config: GoldenHourConfig, org: Organisation) -> tuple[list[str], list[str], bool]:
    """The authorities and care homes whose children's alerts `org` acts on; True: all."""
    if org.kind == OrgKind.local_authority:
        return [org.code], [], False
    if org.kind == OrgKind.police:
        return [o.code for o in config.organisations if o.police == org.code], [], False
    if org.kind == OrgKind.care_home:
        return [], [org.code], False
    return [], [], org.kind == OrgKind.national


async def held(
    conn: asyncpg.Connection, config: GoldenHourConfig, org: Organisation, rota: Rota, at: datetime
) -> list[asyncpg.Record]:
    """The open, unacknowledged alerts whose fired steps named the rota's role of `org`, first
    fired before `at`: what someone coming on call at `at` holds."""
    authorities, homes, everything = _scope(config, org)
    target = f"{org.kind}.{rota.role}"
    found = []
    for row in await conn.fetch(_HELD, authorities, homes, everything, at):
        steps = {s.key: s for s in policy_for_alert(config, row["kind"], row["risk_level"]).steps}
        if any(target in steps[k].notify for k in row["fired"] if k in steps):
            found.append(row)
    return found
