"""The rota watch: at each handover the incoming person is briefed on the open alerts they now
hold, and a gap in a rota is counted on /metrics and told a day ahead.

Every replica runs the watch; a handover is briefed once by whichever sees it first (the
`rota_handovers` key), in one transaction with the briefing's messages and the alerts' new
holders, so a worker stopped halfway leaves the handover for the next. A handover is looked for
up to `LOOKBACK` back: a worker down for a few minutes still briefs it, late.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from goldenhour.contracts.config import GoldenHourConfig, Organisation
from goldenhour.contracts.oncall import NO_CHANGES, Handover, gaps, handovers
from goldenhour.contracts.rotas import Rota
from goldenhour.infra import rota_changes
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import audit
from goldenhour.infra.notifications import Outgoing, queue
from goldenhour.streams.held_alerts import held
from goldenhour.streams.intake import PoolGetter
from goldenhour.wording import rotas as wording

log = structlog.get_logger(__name__)

LOOKBACK = timedelta(minutes=30)
AHEAD = timedelta(days=14)
# A gap is told to the rota's organisation's duty managers once, this long before it starts.
GAP_NOTICE = timedelta(days=1)

BRIEFINGS = Counter(
    "goldenhour_rota_briefings_total", "Handover briefings sent to someone coming on call"
)
GAP_HOURS = Gauge(
    "goldenhour_rota_gap_hours",
    "Hours in the next 14 days when nobody is on a rota and its fallback is paged",
    ["rota_id"],
)
GAPS = Gauge(
    "goldenhour_rota_gaps", "Stretches in the next 14 days when nobody is on a rota", ["rota_id"]
)
WATCH_ERRORS = Counter("goldenhour_rota_watch_errors_total", "Rota watch rounds that failed")

_CLAIM_HANDOVER = """
INSERT INTO rota_handovers (rota_id, at, contact_id, alerts, briefed_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true
"""

_HOLD = """
INSERT INTO alert_holders (alert_id, contact_id, org_code, channel, since, why)
SELECT a, $2, $3, c, $4, $5 FROM unnest($1::uuid[]) AS a, unnest(ARRAY['sms', 'email']) AS c
ON CONFLICT DO NOTHING
"""


class RotaWatch:
    """Briefs handovers and counts gaps for every rota of the directory."""

    def __init__(self, config: GoldenHourConfig, pool: PoolGetter, every_s: float = 15.0) -> None:
        self.config = config
        self.pool = pool
        self.every_s = every_s
        self.failures = 0

    async def run(self) -> None:
        """For ever, every `every_s`; the watch survives any failure."""
        while True:
            try:
                db = await self.pool()
                async with db.acquire() as conn:
                    now = await conn.fetchval("SELECT clock_timestamp()")
                    await self.once(conn, now)
                if self.failures:
                    log.info("rota.watch_recovered", failures=self.failures)
                self.failures = 0
                sleep = self.every_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.failures == 1:
                    log.error("rota.watch_failed", error=repr(exc)[:500])
                WATCH_ERRORS.inc()
                sleep = delay(self.failures, 1.0, self.every_s)
            await asyncio.sleep(sleep)

    async def once(self, conn: asyncpg.Connection, now: datetime) -> int:
        """Brief the handovers of the last `LOOKBACK` not briefed yet and count the gaps ahead;
        the number of people briefed. A rota that fails is logged and counted and the others
        go on; the round fails only when its connection does."""
        briefed = 0
        for org, rota in self.config.rotas():
            try:
                briefed += await self._watch(conn, org, rota, now)
            except Exception as exc:
                if conn.is_closed():
                    raise
                WATCH_ERRORS.inc()
                log.error("rota.watch_failed", rota_id=rota.id, error=repr(exc)[:500])
        return briefed

    async def _watch(
        self, conn: asyncpg.Connection, org: Organisation, rota: Rota, now: datetime
    ) -> int:
        rows = await rota_changes.between(conn, rota.id, now - LOOKBACK - AHEAD, now + AHEAD)
        changes = rota_changes.changes(rows).get(rota.id, NO_CHANGES)
        briefed = 0
        for handover in handovers(rota, self.config.tz, now - LOOKBACK, now, changes):
            briefed += await self._brief(conn, org, rota, handover, now)
        await self._gaps(conn, org, rota, changes, now)
        return briefed

    async def _brief(
        self,
        conn: asyncpg.Connection,
        org: Organisation,
        rota: Rota,
        handover: Handover,
        now: datetime,
    ) -> int:
        briefed = 0
        for contact_id in sorted(handover.incoming):
            # Of this organisation only: a stored change may name an id the directory has
            # since given to someone else.
            contact = next((c for c in org.contacts if c.id == contact_id), None)
            if contact is None:
                continue
            async with conn.transaction():
                alerts = await held(conn, self.config, org, rota, handover.at)
                claimed = await conn.fetchval(
                    _CLAIM_HANDOVER, rota.id, handover.at, contact_id, len(alerts), now
                )
                why = f"handover:{rota.id}:{handover.at.isoformat()}"
                # On every round of the look-back, not only the first: a step that fired just
                # before the handover, in a transaction committed after the briefing was read,
                # still makes its alert theirs (without a second SMS).
                await conn.execute(
                    _HOLD, [a["alert_id"] for a in alerts], contact_id, org.code, now, why
                )
                if not claimed or not alerts:
                    continue
                items = [
                    wording.Held(
                        a["child_id"], a["kind"], a["risk_level"], a["anchor_at"], a["ack_code"]
                    )
                    for a in alerts
                ]
                tz = self.config.tz
                subject, body = wording.briefing_email(rota.role, org.code, items, tz)
                sms = wording.briefing_sms(rota.role, org.code, items, tz)
                await queue(
                    conn,
                    None,
                    None,
                    [
                        Outgoing(why, contact_id, org.code, "sms", contact.phone, "", sms),
                        Outgoing(
                            why, contact_id, org.code, "email", str(contact.email), subject, body
                        ),
                    ],
                    now,
                )
                await audit(
                    conn,
                    "rota.handover_briefed",
                    None,
                    None,
                    {
                        "rota_id": rota.id,
                        "at": handover.at.isoformat(),
                        "contact_id": contact_id,
                        "alerts": [str(a["alert_id"]) for a in alerts],
                    },
                )
            BRIEFINGS.inc()
            briefed += 1
            log.info(
                "rota.handover_briefed",
                rota_id=rota.id,
                contact_id=contact_id,
                at=handover.at.isoformat(),
                alerts=len(alerts),
            )
        return briefed

    async def _gaps(
        self, conn: asyncpg.Connection, org: Organisation, rota: Rota, changes, now: datetime
    ) -> None:
        """Count the gaps of the next 14 days; a gap starting within a day is emailed to the
        organisation's duty managers, once."""
        ahead = [
            g
            for g in gaps(rota, self.config.tz, now - LOOKBACK, now + AHEAD, changes)
            if g.end > now
        ]
        GAPS.labels(rota.id).set(len(ahead))
        GAP_HOURS.labels(rota.id).set(
            sum((g.end - max(g.start, now)).total_seconds() for g in ahead) / 3600
        )
        # Its organisation's duty managers; one with none (a control room) hears it itself.
        managers = [c for c in org.contacts if c.role == "duty_manager"] or [
            c for c in org.contacts if c.id in {*rota.members, rota.fallback}
        ]
        for gap in ahead:
            # Told by its start, the one instant that stays the same from round to round; a gap
            # begun before the look-back began is one whose notice is past.
            if gap.start <= now - LOOKBACK or gap.start - now > GAP_NOTICE:
                continue
            subject, body = wording.gap_email(
                rota.id, rota.role, org.code, gap.start, gap.end, rota.fallback, self.config.tz
            )
            key = f"rota_gap:{rota.id}:{gap.start.isoformat()}"
            told = await queue(
                conn,
                None,
                None,
                [
                    Outgoing(key, c.id, org.code, "email", str(c.email), subject, body)
                    for c in managers
                ],
                now,
            )
            if told:
                await audit(
                    conn,
                    "rota.gap_told",
                    None,
                    None,
                    {
                        "rota_id": rota.id,
                        "start": gap.start.isoformat(),
                        "end": gap.end.isoformat(),
                    },
                )
                log.warning(
                    "rota.gap_ahead",
                    rota_id=rota.id,
                    start=gap.start.isoformat(),
                    end=gap.end.isoformat(),
                )


def add_rota_watch(app, watch: RotaWatch) -> None:
    """Register the task on `app`."""

    @app.task
    async def rota_watch() -> None:
        await watch.run()
