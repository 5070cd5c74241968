"""The watchers' decisions about a child's alerts, carried out by the alerts' clock: the two
peers meet here, in the intake handler's and the timer claimer's transactions, and neither
calls through the other."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from goldenhour.streams.child_watch import Decided
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.outcome import Outcome
from goldenhour.streams.watchers import Raise, Resolve, SetRisk


async def apply_risk(
    clock: ClockStore, conn: asyncpg.Connection, decided: Decided, now: datetime
) -> None:
    """The child's new risk, which a live missing alert's later steps follow."""
    for action in decided.actions:
        if isinstance(action, SetRisk):
            await clock.set_risk(conn, decided.child_id, action.level, action.reason, now)


async def apply_alerts(
    clock: ClockStore, conn: asyncpg.Connection, decided: Decided, now: datetime
) -> Outcome:
    """The alerts the watchers close and open, in their order."""
    outcome = Outcome()
    child_id, cause = decided.child_id, decided.cause
    for action in decided.actions:
        if isinstance(action, Resolve):
            outcome.extend(
                await clock.resolve(conn, child_id, action.kinds, now, action.reason, now, cause)
            )
        elif isinstance(action, Raise):
            outcome.extend(
                await clock.open_alert(
                    conn,
                    child_id,
                    action.kind,
                    action.anchor_at,
                    now,
                    facts=action.facts,
                    cause=cause,
                )
            )
    return outcome
