"""The watchers' Postgres side: their clocks (`watch_timers`) and what their decisions change.

Locks are always taken in one order, child → clocks → alerts, by intake and by the claimer alike,
so the two never wait on each other in a circle.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import asyncpg
import structlog

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord
from goldenhour.infra.db import audit
from goldenhour.streams import watchers
from goldenhour.streams.clock_store import ClockStore, Deferral, Outcome, claim_each
from goldenhour.streams.follow import follow_child
from goldenhour.streams.watchers import (
    Arm,
    Cancel,
    ChildState,
    PlacementState,
    Raise,
    Resolve,
    SetRisk,
)

log = structlog.get_logger(__name__)

_TIMER_DEFERRAL = Deferral(
    "UPDATE watch_timers SET due_at = $2, clock_failures = clock_failures + 1,"
    " last_clock_error = $3 WHERE id = $1 RETURNING clock_failures",
    "id",
    "watch.fire_failed",
    "watch.error",
    "timer",
    "UPDATE watch_timers SET clock_failures = 0, last_clock_error = NULL WHERE id = $1",
)


# One round trip: the child, the current placement and what the alerts say of past episodes.
_STATE_SQL = """
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


class WatchStore:
    """Applies the pure watcher rules to one child's record, clocks and alerts."""

    def __init__(self, config: GoldenHourConfig, clock: ClockStore) -> None:
        self.config = config
        self.clock = clock
        self.w = config.watchers
        self.tz = clock.tz

    async def state(
        self, conn: asyncpg.Connection, child_id: str, now: datetime, lock: bool
    ) -> ChildState | None:
        """What the watchers know of the child now; `lock` holds the child for this transaction."""
        row = await conn.fetchrow(
            _STATE_SQL + (" FOR UPDATE OF c" if lock else ""),
            child_id,
            now - 2 * self.w.episodes_window,
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

    # --- intake -------------------------------------------------------------------------

    async def on_intake(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> Outcome:
        """Everything one intake event changes, the missing-child clock included."""
        event = record.event
        child_id, kind, data = event.child_id, event.type.value, event.data
        before = await self.state(conn, child_id, now, lock=True)
        if before is None:
            log.warning("watch.unknown_child", child_id=child_id, event_id=str(event.event_id))
            return Outcome()
        if kind in ("checkin.recorded", "child.located"):
            # Being located back counts as being seen: the next check-in is due from then.
            seen = (
                getattr(data, "seen_at", None)
                or getattr(data, "located_at", None)
                or event.occurred_at
            )
            await conn.execute(
                "UPDATE children SET last_checkin_at = GREATEST(last_checkin_at, $2)"
                " WHERE child_id = $1",
                child_id,
                seen,
            )
            # What that UPDATE did, without reading the child again.
            last = before.last_checkin_at
            state = replace(before, last_checkin_at=seen if last is None else max(last, seen))
        else:
            state = before
        episode: list[watchers.Action] = []
        if kind == "absence.reported" and not before.missing:
            episode = watchers.on_new_episode(data.last_seen_at, before, self.w)
        actions = watchers.on_event(kind, data, event.occurred_at, state, self.w, self.tz)
        if kind == "risk.signal":
            await self._record_signal(conn, record, before, actions)
        cause = {"event_id": str(event.event_id)}
        if kind in ("placement.started", "child.transferred"):
            await follow_child(conn, child_id)
        await self._apply_clocks(conn, child_id, actions, now, cause)
        await self._apply_risk(conn, child_id, episode + actions, now)
        outcome = Outcome()
        if kind == "absence.reported":
            outcome.extend(await self.clock.on_absence(conn, record, now))
        elif kind == "child.located":
            outcome.extend(await self.clock.on_located(conn, record, now))
        outcome.extend(await self._apply_alerts(conn, child_id, episode + actions, now, cause))
        return outcome

    async def _record_signal(
        self, conn, record: IntakeRecord, before: ChildState, actions: list[watchers.Action]
    ) -> None:
        after = next((a.level for a in actions if isinstance(a, SetRisk)), before.risk_level)
        data = record.event.data
        await conn.execute(
            "INSERT INTO risk_signals (event_id, child_id, kind, detail, occurred_at,"
            " risk_before, risk_after) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING",
            record.event.event_id,
            record.event.child_id,
            str(data.kind.value),
            getattr(data, "detail", None),
            record.event.occurred_at,
            before.risk_level,
            after,
        )

    # --- applying decisions, in lock order ----------------------------------------------

    async def _apply_clocks(self, conn, child_id: str, actions, now: datetime, cause: dict) -> None:
        for action in actions:
            if isinstance(action, Cancel | Arm):
                await conn.execute(
                    "UPDATE watch_timers SET status = 'cancelled', decided_at = $3, reason = $4"
                    " WHERE child_id = $1 AND kind = $2 AND status = 'pending'",
                    child_id,
                    action.kind,
                    now,
                    action.reason if isinstance(action, Cancel) else "set again",
                )
            if isinstance(action, Arm):
                await conn.execute(
                    "INSERT INTO watch_timers (child_id, kind, due_at, status, data, armed_at)"
                    " VALUES ($1, $2, $3, 'pending', $4, $5)",
                    child_id,
                    action.kind,
                    action.due_at,
                    action.data,
                    now,
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
                await conn.execute(
                    "UPDATE children SET return_interview_due_at = $2 WHERE child_id = $1",
                    child_id,
                    datetime.fromisoformat(due) if due else None,
                )

    async def _apply_risk(self, conn, child_id: str, actions, now: datetime) -> None:
        for action in actions:
            if isinstance(action, SetRisk):
                await self.clock.set_risk(conn, child_id, action.level, action.reason, now)

    async def _apply_alerts(
        self, conn, child_id: str, actions, now: datetime, cause: dict
    ) -> Outcome:
        outcome = Outcome()
        for action in actions:
            if isinstance(action, Resolve):
                outcome.extend(
                    await self.clock.resolve(
                        conn, child_id, action.kinds, now, action.reason, now, cause
                    )
                )
            elif isinstance(action, Raise):
                outcome.extend(
                    await self.clock.open_alert(
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

    # --- clocks running out ---------------------------------------------------------------

    async def claim_due(self, conn: asyncpg.Connection, now: datetime, limit: int) -> Outcome:
        """Claim due clocks by index, skipping those another worker holds, and act on each."""
        return await claim_each(
            conn,
            "SELECT * FROM watch_timers WHERE status = 'pending' AND due_at <= $1"
            " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
            lambda timer: self._fire(conn, timer, now),
            _TIMER_DEFERRAL,
        )

    async def _fire(
        self, conn: asyncpg.Connection, timer: asyncpg.Record, now: datetime
    ) -> Outcome:
        await conn.execute(
            "UPDATE watch_timers SET status = 'fired', decided_at = $2 WHERE id = $1",
            timer["id"],
            now,
        )
        child_id = timer["child_id"]
        state = await self.state(conn, child_id, now, lock=False)
        if state is None:
            return Outcome()
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
                "raised": [a.kind for a in actions if isinstance(a, Raise)],
            },
        )
        await self._apply_clocks(conn, child_id, actions, now, cause)
        await self._apply_risk(conn, child_id, actions, now)
        return await self._apply_alerts(conn, child_id, actions, now, cause)
