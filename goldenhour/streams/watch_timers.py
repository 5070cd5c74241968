"""The watchers' clocks running out: claimed by index like the alerts' clock, each in its own
savepoint, and what each decides carried out in it."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from goldenhour.streams import decisions
from goldenhour.streams.child_watch import CLAIM_DUE_TIMERS, TIMER_DEFERRAL, ChildWatch
from goldenhour.streams.claims import claim_each
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.outcome import Outcome


async def claim_due(
    watch: ChildWatch, clock: ClockStore, conn: asyncpg.Connection, now: datetime, limit: int
) -> Outcome:
    """Claim due clocks by index, skipping those another worker holds, and act on each."""

    async def fire(timer: asyncpg.Record) -> Outcome:
        decided = await watch.fire(conn, timer, now)
        if decided is None:
            return Outcome()
        await decisions.apply_risk(clock, conn, decided, now)
        return await decisions.apply_alerts(clock, conn, decided, now)

    return await claim_each(conn, CLAIM_DUE_TIMERS, now, limit, fire, TIMER_DEFERRAL)
