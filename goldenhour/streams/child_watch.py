"""The watchers' Postgres side: what they know of a child, their clocks (`watch_timers`), and the
child's record as events change it. The decisions they make about alerts are returned, for the
intake handler or the timer claimer to hand to the alerts' clock.

Locks are always taken in one order, child → clocks → alerts, by intake and by the claimer alike,
so the two never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import (
    AbsenceReported,
    CheckinRecorded,
    ChildLocated,
    EventType,
    IntakeRecord,
    RiskSignal,
)
from goldenhour.infra.db import audit
from goldenhour.streams import children, watchers
from goldenhour.streams.claims import Deferral
from goldenhour.streams.follow import follow_child
from goldenhour.streams.watchers import Action, Arm, Cancel, ChildState, PlacementState, SetRisk

log = structlog.get_logger(__name__)

TIMER_DEFERRAL = Deferral(
    "UPDATE watch_timers SET due_at = $2, clock_failures = clock_failures + 1,"
    " last_clock_error = $3 WHERE id = $1 RETURNING clock_failures",
    "id",
    "watch.fire_failed",
    "watch.error",
    "timer",
    "UPDATE watch_timers SET clock_failures = 0, last_clock_error = NULL WHERE id = $1",
)

CLAIM_DUE_TIMERS = """
SELECT * FROM watch_timers WHERE status = 'pending' AND due_at <= $1
ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""

# One round trip: the child, the current placement and what the alerts say of past episodes.
CHILD_STATE = """
WITH recent AS (
    SELECT kind, status, anchor_at, opened_at FROM alerts
    WHERE child_id = $1 AND kind IN ('missing', 'strategy_meeting')
      AND (status <> 'resolved' OR anchor_at > $2)
)
SELECT c.risk_level, c.last_checkin_at, c.identified_at,
       p.placement_id, p.care_home, p.started_at, p.checkin_interval_minutes, p.curfew,
       EXISTS (SELECT 1 FROM recent WHERE kind = 'missing' AND status <> 'resolved') AS missing,
       ARRAY(SELECT anchor_at FROM recent WHERE kind = 'missing' ORDER BY anchor_at) AS episodes,
       (SELECT max(opened_at) FROM recent WHERE kind = 'strategy_meeting') AS strategy_prompted_at
FROM children c
LEFT JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL
WHERE c.child_id = $1
"""
# The same, holding the child for the rest of the transaction.
CHILD_STATE_LOCKED = CHILD_STATE + " FOR UPDATE OF c"

RECORD_SIGNAL = """
INSERT INTO risk_signals (event_id, child_id, kind, detail, occurred_at, risk_before, risk_after)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""

CANCEL_TIMER = """
UPDATE watch_timers SET status = 'cancelled', decided_at = $3, reason = $4
WHERE child_id = $1 AND kind = $2 AND status = 'pending'
"""

ARM_TIMER = """
INSERT INTO watch_timers (child_id, kind, due_at, status, data, armed_at)
VALUES ($1, $2, $3, 'pending', $4, $5)
"""

MARK_FIRED = "UPDATE watch_timers SET status = 'fired', decided_at = $2 WHERE id = $1"


@dataclass(frozen=True)
class Decided:
    """What the watchers decided about a child's alerts, for the alerts' clock to carry out."""

    child_id: str
    actions: Sequence[Action]
    cause: dict


class ChildWatch:
    """Applies the pure watcher rules to one child's record and clocks."""

    def __init__(self, config: GoldenHourConfig) -> None:
        self.config = config
        self.w = config.watchers
        self.tz = ZoneInfo(config.timezone)

    async def state(
        self, conn: asyncpg.Connection, child_id: str, now: datetime, lock: bool
    ) -> ChildState | None:
        """What the watchers know of the child now; `lock` holds the child for this transaction."""
        row = await conn.fetchrow(
            CHILD_STATE_LOCKED if lock else CHILD_STATE, child_id, now - 2 * self.w.episodes_window
        )
        if row is None:
            return None
        return ChildState(
            risk_level=row["risk_level"],
            placement=PlacementState(
                row["placement_id"],
                row["care_home"],
                row["started_at"],
                row["checkin_interval_minutes"],
                row["curfew"],
            )
            if row["placement_id"]
            else None,
            last_checkin_at=row["last_checkin_at"],
            identified_at=row["identified_at"],
            missing=row["missing"],
            episodes=tuple(row["episodes"]),
            strategy_prompted_at=row["strategy_prompted_at"],
        )

    async def on_intake(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> Decided | None:
        """What one intake event changes of the child and its clocks; what it decides about the
        child's alerts. None for a child the database does not know."""
        event = record.event
        child_id, kind, data = event.child_id, event.type.value, event.data
        before = await self.state(conn, child_id, now, lock=True)
        if before is None:
            log.warning("watch.unknown_child", child_id=child_id, event_id=str(event.event_id))
            return None
        state = before
        if event.type in (EventType.checkin_recorded, EventType.child_located):
            # Being located back counts as being seen: the next check-in is due from then.
            if isinstance(data, CheckinRecorded):
                seen = data.seen_at or event.occurred_at
            else:
                seen = event.data_as(ChildLocated).located_at
            await children.seen(conn, child_id, seen)
            # What that UPDATE did, without reading the child again.
            last = before.last_checkin_at
            state = replace(before, last_checkin_at=seen if last is None else max(last, seen))
        episode: list[Action] = []
        if event.type == EventType.absence_reported and not before.missing:
            began = event.data_as(AbsenceReported).last_seen_at
            episode = watchers.on_new_episode(began, before, self.w)
        actions = watchers.on_event(kind, data, event.occurred_at, state, self.w, self.tz)
        if event.type == EventType.risk_signal:
            await self._record_signal(conn, record, before, actions)
        cause = {"event_id": str(event.event_id)}
        if event.type in (EventType.placement_started, EventType.child_transferred):
            await follow_child(conn, child_id)
        await self._apply_clocks(conn, child_id, actions, now, cause)
        return Decided(child_id, episode + actions, cause)

    async def _record_signal(
        self,
        conn: asyncpg.Connection,
        record: IntakeRecord,
        before: ChildState,
        actions: list[Action],
    ) -> None:
        after = next((a.level for a in actions if isinstance(a, SetRisk)), before.risk_level)
        data = record.event.data_as(RiskSignal)
        await conn.execute(
            RECORD_SIGNAL,
            record.event.event_id,
            record.event.child_id,
            str(data.kind.value),
            data.detail,
            record.event.occurred_at,
            before.risk_level,
            after,
        )

    async def _apply_clocks(
        self,
        conn: asyncpg.Connection,
        child_id: str,
        actions: Sequence[Action],
        now: datetime,
        cause: dict,
    ) -> None:
        for action in actions:
            if isinstance(action, Cancel | Arm):
                reason = action.reason if isinstance(action, Cancel) else "set again"
                await conn.execute(CANCEL_TIMER, child_id, action.kind, now, reason)
            if isinstance(action, Arm):
                await conn.execute(
                    ARM_TIMER, child_id, action.kind, action.due_at, action.data, now
                )
                log.info(
                    "watch.armed",
                    child_id=child_id,
                    kind=action.kind,
                    due_at=action.due_at.isoformat(),
                    **cause,
                )
            if isinstance(action, Cancel | Arm) and action.kind == "return_interview":
                due = action.data.get("due_at") if isinstance(action, Arm) else None
                await children.set_return_interview_due(
                    conn, child_id, datetime.fromisoformat(due) if due else None
                )

    async def fire(
        self, conn: asyncpg.Connection, timer: asyncpg.Record, now: datetime
    ) -> Decided | None:
        """A claimed clock run out: marked fired, its decisions about clocks applied; what it
        decides about the child's alerts (None for a child no longer known)."""
        await conn.execute(MARK_FIRED, timer["id"], now)
        child_id = timer["child_id"]
        state = await self.state(conn, child_id, now, lock=False)
        if state is None:
            return None
        actions = watchers.on_timer(
            timer["kind"], timer["due_at"], timer["data"] or {}, state, self.w, self.tz, now
        )
        cause = {"timer": f"{timer['kind']}#{timer['id']}"}
        await audit(
            conn,
            f"watch.{timer['kind']}_ran_out",
            child_id,
            None,
            {
                "due_at": timer["due_at"].isoformat(),
                "raised": [a.kind for a in actions if isinstance(a, watchers.Raise)],
            },
        )
        await self._apply_clocks(conn, child_id, actions, now, cause)
        return Decided(child_id, actions, cause)
