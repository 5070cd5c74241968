"""The golden-hour clock's Postgres side: open, advance, claim and resolve alerts.

Every change to one alert happens in one transaction with the alert row locked: the claim, the
steps' new state and the message rows commit together, so a late or restarted worker neither
skips nor repeats a step (the shape of GoAlert's engine). The decisions are `streams.escalation`'s;
this module only reads what they need and writes what they say.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from goldenhour.contracts.alert_kinds import MISSING, STAND_DOWN, policy_for_alert
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import AlertResolved, DerivedEvent
from goldenhour.contracts.events import AbsenceReported, ChildLocated, IntakeRecord
from goldenhour.contracts.policy import Policy
from goldenhour.infra import rota_changes
from goldenhour.infra.ack_links import AckLinks
from goldenhour.infra.db import audit
from goldenhour.infra.faults import is_transient
from goldenhour.streams import alert_rows, alert_steps, children
from goldenhour.streams.alert_failures import FailingAlerts
from goldenhour.streams.alert_messages import AlertMessages, told
from goldenhour.streams.claims import Deferral, claim_each
from goldenhour.streams.escalation import ClockState, Delivery, allot, anchor, plan, step_of
from goldenhour.streams.outcome import Outcome
from goldenhour.streams.recipients import resolver
from goldenhour.streams.sharing import Sharing
from goldenhour.wording import messages
from goldenhour.wording import steps as wording

log = structlog.get_logger(__name__)

# Due alerts by the partial index on `alerts.next_due_at`, skipping those another worker holds.
CLAIM_DUE_ALERTS = """
SELECT * FROM alerts WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2
FOR UPDATE SKIP LOCKED
"""

ALERT_DEFERRAL = Deferral(
    "UPDATE alerts SET next_due_at = $2, clock_failures = clock_failures + 1,"
    " last_clock_error = $3 WHERE alert_id = $1 RETURNING clock_failures",
    "alert_id",
    "clock.advance_failed",
    "alert.clock_error",
    "alert",
    "UPDATE alerts SET clock_failures = 0, last_clock_error = NULL WHERE alert_id = $1",
)


class ClockStore:
    """Applies the pure escalation clock to the alerts in Postgres."""

    def __init__(self, config: GoldenHourConfig, ack_links: AckLinks | None = None) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.sharing = Sharing(config, self.tz)
        self.messages = AlertMessages(config, self.tz, ack_links)
        self.failures = FailingAlerts(self.messages, self._policy)
        self._policies: dict[tuple[str, str], Policy] = {}
        self.policies_digest = hashlib.sha256(
            json.dumps(
                {k: p.model_dump(mode="json") for k, p in config.policies.items()}, sort_keys=True
            ).encode()
        ).hexdigest()[:16]

    async def wake_replanned(self, conn: asyncpg.Connection) -> int:
        """Wake every live alert whose next wake was planned under other policies (a deploy
        that changed them): a step inserted, already due, fires now and not at that wake."""
        status = await conn.execute(alert_rows.WAKE_REPLANNED, self.policies_digest)
        return int(status.split()[-1])

    def _policy(self, kind: str, risk_level: str) -> Policy:
        key = (kind, risk_level)
        if key not in self._policies:
            self._policies[key] = policy_for_alert(self.config, kind, risk_level)
        return self._policies[key]

    # --- intake -------------------------------------------------------------------------

    async def on_absence(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> Outcome:
        """Open the child's missing alert (or update the open one) and fire what is due."""
        event = record.event
        data = event.data_as(AbsenceReported)
        anchor_at, ahead = anchor(data.last_seen_at, record.received_at)
        alert = await alert_rows.live(conn, event.child_id, MISSING)
        if alert is not None:
            alert = await alert_rows.update_missing(conn, alert, event, anchor_at, ahead)
            if ahead is not None:
                await alert_steps.flag_ahead(conn, alert, record, ahead, now, self.tz)
            # A new sighting reaches the neighbouring authorities the alert was shared with.
            outcome = Outcome(await self._share(conn, alert, "Update", now))
            outcome.extend(await self._advance_or_leave(conn, alert, now))
            return outcome
        outcome = await self.open_alert(
            conn,
            event.child_id,
            MISSING,
            anchor_at,
            now,
            last_seen_location=data.last_seen_location,
            circumstances=data.circumstances,
            clothing=data.clothing,
            placement_id=data.placement_id,
            cause={"event_id": str(event.event_id)},
            reported_last_seen_at=data.last_seen_at if ahead else None,
        )
        if ahead is not None:
            alert = await alert_rows.live(conn, event.child_id, MISSING)
            if alert is not None:
                await alert_steps.flag_ahead(conn, alert, record, ahead, now, self.tz)
        return outcome

    async def live_alert(
        self, conn: asyncpg.Connection, child_id: str, kind: str
    ) -> asyncpg.Record | None:
        """The child's live alert of `kind`, locked."""
        return await alert_rows.live(conn, child_id, kind)

    async def open_alert(
        self,
        conn: asyncpg.Connection,
        child_id: str,
        kind: str,
        anchor_at: datetime,
        now: datetime,
        *,
        facts: dict | None = None,
        last_seen_location: str | None = None,
        circumstances: str | None = None,
        clothing: str | None = None,
        placement_id: str | None = None,
        cause: dict | None = None,
        reported_last_seen_at: datetime | None = None,
    ) -> Outcome:
        """Open an alert of `kind` for the child, anchored at `anchor_at`, and fire what is due.
        Nothing happens when one of that kind is live already (one per child and kind)."""
        raised = await alert_rows.open_alert(
            conn,
            alert_rows.Opening(
                child_id,
                kind,
                anchor_at,
                facts=facts or {},
                last_seen_location=last_seen_location,
                circumstances=circumstances,
                clothing=clothing,
                placement_id=placement_id,
                cause=cause or {},
                reported_last_seen_at=reported_last_seen_at,
            ),
            now,
        )
        if raised is None:
            return Outcome()
        alert, event = raised
        outcome = Outcome([event])
        outcome.extend(await self._advance_or_leave(conn, alert, now))
        return outcome

    async def on_located(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> Outcome:
        """Resolve the missing alert and any welfare concern, standing everyone told down."""
        data = record.event.data_as(ChildLocated)
        status = data.status.value if data.status else "located"
        return await self.resolve(
            conn,
            record.event.child_id,
            (MISSING, "missed_checkin", "curfew"),
            data.located_at,
            status,
            now,
            cause={"event_id": str(record.event.event_id)},
        )

    async def resolve(
        self,
        conn: asyncpg.Connection,
        child_id: str,
        kinds: tuple[str, ...],
        at: datetime,
        reason: str,
        now: datetime,
        cause: dict | None = None,
    ) -> Outcome:
        """Resolve the child's live alerts of `kinds`: cancel what is pending and send a
        stand-down to everyone who was told."""
        outcome = Outcome()
        for alert in await alert_rows.live_of_kinds(conn, child_id, kinds):
            await alert_rows.mark_resolved(conn, alert, at, reason)
            # After the pending messages are cancelled, or it would cancel itself.
            outcome.events += await self._share(conn, alert, "Cancel", now)
            facts = messages.alert_facts(alert, self.config)
            sms = messages.sms_closed(facts, at, reason, self.tz)
            email = messages.email_closed(facts, at, reason, self.tz)
            # Whoever was called hears the stand-down by SMS: a call for it would be one more
            # interruption for someone who may be out looking for the child.
            stand_down = list(
                {
                    (r.contact_id, "sms" if ch == "voice" else ch): Delivery(
                        r, "sms" if ch == "voice" else ch, STAND_DOWN
                    )
                    for r, ch in await told(conn, self.config, alert["alert_id"])
                }.values()
            )
            outcome.events += await self.messages.fixed(
                conn, alert, stand_down, {"sms": ("", sms), "email": email}, now
            )
            await alert_steps.record_line(
                conn, alert, STAND_DOWN, now, wording.resolved(reason), None
            )
            await audit(
                conn,
                "alert.resolved",
                child_id,
                alert["alert_id"],
                {**(cause or {}), "reason": reason},
            )
            outcome.events.append(
                AlertResolved(
                    occurred_at=now,
                    child_id=child_id,
                    alert_id=alert["alert_id"],
                    at=at,
                    reason=reason,
                )
            )
            log.info(
                "alert.resolved",
                alert_id=str(alert["alert_id"]),
                child_id=child_id,
                kind=alert["kind"],
                **(cause or {}),
            )
        return outcome

    async def _share(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        follow_up: str | None,
        now: datetime,
    ) -> list[DerivedEvent]:
        """Share (or update, or cancel) the alert with the neighbours, in a savepoint: a failure
        there is audited and never holds back the alert itself, since the child's own agencies
        come first."""
        try:
            async with conn.transaction():
                if follow_up is None:
                    return await self.sharing.share(conn, alert, now)
                return await self.sharing.follow_up(conn, alert, follow_up, now)
        except Exception as exc:
            log.error(
                "shared_alert.failed",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                error=repr(exc),
            )
            await audit(
                conn,
                "shared_alert.error",
                alert["child_id"],
                alert["alert_id"],
                {"error": repr(exc)[:500]},
            )
            return []

    async def set_risk(
        self, conn: asyncpg.Connection, child_id: str, level: str, reason: str, now: datetime
    ) -> None:
        """The child's new risk; a live missing alert's later steps follow the new policy."""
        child = await children.change_risk(conn, child_id, level)
        alerts = await conn.fetch(alert_rows.LIVE_OF_OTHER_RISK, child_id, MISSING, level)
        for alert in alerts:
            # Steps recorded by position are re-keyed while the policy that decided them is
            # still the alert's: afterwards their positions would name the new policy's steps.
            await alert_steps.decided(conn, alert, self._policy(alert["kind"], alert["risk_level"]))
            # Waking the alert now lets the clock re-plan under the new policy at once; a step
            # of it due before `policy_since` is a catch-up (see streams.escalation).
            await conn.execute(alert_rows.CHANGE_POLICY, alert["alert_id"], level, now)
            await audit(
                conn,
                "alert.policy_changed",
                child_id,
                alert["alert_id"],
                {"policy_before": alert["policy"], "policy": level, "reason": reason},
            )
        if not child and not alerts:
            return
        await audit(
            conn, "child.risk_changed", child_id, None, {"risk_level": level, "reason": reason}
        )
        log.info("child.risk_changed", child_id=child_id, risk_level=level, reason=reason)

    # --- the clock ----------------------------------------------------------------------

    async def claim_due(self, conn: asyncpg.Connection, now: datetime, limit: int) -> Outcome:
        """Claim up to `limit` due alerts by index, skipping those another worker holds."""
        return await claim_each(
            conn,
            CLAIM_DUE_ALERTS,
            now,
            limit,
            lambda alert: self.advance(conn, alert, now),
            ALERT_DEFERRAL,
            lambda alert, failures, exc: self.failures.failing(conn, alert, failures, exc, now),
        )

    async def _advance_or_leave(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> Outcome:
        """Advance an alert just opened or updated by an event. Should that fail for this alert,
        the event still stands and the alert stays due, so the claimers retry it (and send the
        fallback) rather than the event failing with nobody told; a transient failure goes
        back to the event's retry."""
        try:
            async with conn.transaction():
                return await self.advance(conn, alert, now)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error(
                "clock.advance_failed",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                error=repr(exc)[:500],
            )
            return Outcome()

    async def advance(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> Outcome:
        """Fire, skip and re-notify what is due for one locked alert; schedule the next wake."""
        policy = self._policy(alert["kind"], alert["risk_level"])
        state = ClockState(
            anchor_at=alert["anchor_at"],
            acknowledged=alert["status"] == "acknowledged",
            resolved=alert["status"] == "resolved",
            decided=await alert_steps.decided(conn, alert, policy),
            first_fired_at=alert["first_fired_at"],
            renotify_done=alert["renotify_done"],
            escalate=alert["escalate_requested_at"] is not None,
            policy_since=alert["policy_since"],
            escalated_by=alert["escalate_requested_by"],
        )
        decision = plan(policy, state, now)
        outcome = Outcome()
        if not decision.empty:
            already = (
                await told(conn, self.config, alert["alert_id"]) if decision.wants_told else []
            )
            resolve = resolver(
                self.config,
                alert["local_authority"],
                alert["care_home"],
                now,
                await rota_changes.for_resolving(conn, self.config, now),
            )
            allotted = allot(policy, decision, resolve, already)
            outcome.events += await self.messages.steps(
                conn, alert, allotted.items, now, renotify_max=policy.renotify_max
            )
            outcome.events += await alert_steps.record(
                conn, alert, allotted.steps, allotted.items, now
            )
            if any(step_of(policy, k).share for k in decision.fire):
                outcome.events += await self._share(conn, alert, None, now)
        await conn.execute(
            alert_rows.SCHEDULE_NEXT_WAKE,
            alert["alert_id"],
            decision.next_due_at,
            decision.first_fired_at,
            decision.renotify_round or 0,
            self.policies_digest,
        )
        return outcome
