"""The golden-hour clock's Postgres side: open, advance, claim and resolve alerts.

Every change to one alert happens in one transaction with the alert row locked: the claim, the
steps' new state and the message rows commit together, so a late or restarted worker neither
skips nor repeats a step (the shape of GoAlert's engine). Due alerts are found through the
partial index on `alerts.next_due_at` and claimed with `FOR UPDATE SKIP LOCKED`, so any number of
workers share the work.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from prometheus_client import Counter

from goldenhour.contracts.alert_kinds import MISSING, policy_for_alert
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import (
    AlertRaised,
    AlertResolved,
    DerivedEvent,
    NotificationRequested,
    StepFired,
)
from goldenhour.contracts.events import AbsenceReported, ChildLocated, IntakeRecord
from goldenhour.contracts.policy import Policy
from goldenhour.infra.ack_links import AckLinks
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import audit as _audit
from goldenhour.infra.dead_letters import tell_operations
from goldenhour.infra.faults import is_transient
from goldenhour.streams.escalation import (
    Allotment,
    ClockState,
    Delivery,
    Plan,
    Recipient,
    allot,
    anchor,
    legacy_keys,
    plan,
    renotify_key,
    step_of,
)
from goldenhour.streams.follow import current_placement
from goldenhour.streams.recipients import resolver
from goldenhour.streams.requests import requested
from goldenhour.streams.sharing import Sharing
from goldenhour.streams.withholding import record_withheld
from goldenhour.wording import messages

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A failing row is tried again after this, doubling with each failure in a row up to the cap.
RETRY_AFTER_ERROR = timedelta(seconds=1)
RETRY_CAP = timedelta(seconds=60)
# Failures in a row after which the operations contacts hear of a failing alert (once).
TELL_OPERATIONS_AFTER = 3
FALLBACK = "fallback"
STAND_DOWN = "stand_down"
# A timeline entry, not a step: the last-seen time given was after the report was accepted.
LAST_SEEN_AHEAD = "last_seen_ahead"

CLOCK_FAILURES = Counter(
    "goldenhour_clock_failures_total", "Due rows whose processing failed and was put back", ["what"]
)
FALLBACKS = Counter(
    "goldenhour_clock_fallback_messages_total",
    "Plain first-step messages written for alerts that could not fire their first step",
)


@dataclass
class Outcome:
    """What one transaction did: derived events to announce on Kafka once it committed."""

    events: list[DerivedEvent] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.events += other.events

    @property
    def notifications(self) -> list[NotificationRequested]:
        return [e for e in self.events if isinstance(e, NotificationRequested)]


@dataclass(frozen=True)
class Deferral:
    """How a claimer puts back a row whose work failed: later, counted, loudly, on the record."""

    # UPDATE … SET <due> = $2, clock_failures = clock_failures + 1, last_clock_error = $3
    # WHERE <key> = $1 RETURNING clock_failures
    push_back: str
    key: str
    log_event: str
    audit_action: str
    what: str  # the metric's label
    # UPDATE … SET clock_failures = 0, last_clock_error = NULL WHERE <key> = $1, after a success
    reset: str


# What else to do for a row that failed (its failures in a row, the error); in a savepoint.
OnFailure = Callable[[asyncpg.Record, int, Exception], Awaitable[Outcome]]


async def _defer(
    conn: asyncpg.Connection, how: Deferral, row: asyncpg.Record, now: datetime, exc: Exception
) -> int:
    """Keep a failing row from blocking the queue; try it again after a backoff that grows with
    its failures in a row. Returns that count."""
    alert_id = row.get("alert_id")
    failures = (row.get("clock_failures") or 0) + 1
    wait = timedelta(
        seconds=delay(failures, RETRY_AFTER_ERROR.total_seconds(), RETRY_CAP.total_seconds())
    )
    log.error(
        how.log_event,
        child_id=row["child_id"],
        alert_id=str(alert_id) if alert_id else None,
        kind=row["kind"],
        failures=failures,
        retry_in_s=round(wait.total_seconds(), 1),
        error=repr(exc)[:500],
    )
    counted = await conn.fetchval(how.push_back, row[how.key], now + wait, repr(exc)[:500])
    await _audit(
        conn,
        how.audit_action,
        row["child_id"],
        alert_id,
        {"kind": row["kind"], "failures": counted, "error": repr(exc)[:500]},
    )
    CLOCK_FAILURES.labels(how.what).inc()
    return int(counted or failures)


async def claim_each(
    conn: asyncpg.Connection,
    query: str,
    now: datetime,
    limit: int,
    act: Callable[[asyncpg.Record], Awaitable[Outcome]],
    defer: Deferral,
    on_failure: OnFailure | None = None,
) -> Outcome:
    """Claim up to `limit` rows due at `now` (`query` takes them `FOR UPDATE SKIP LOCKED`, so
    workers share them) and act on each in one transaction; a row whose act fails is put back
    as `defer` says (then `on_failure` runs in a savepoint of its own), and the others go on."""
    outcome = Outcome()
    async with conn.transaction():
        for row in await conn.fetch(query, now, limit):
            try:
                async with conn.transaction():  # a savepoint
                    outcome.extend(await act(row))
                    if row.get("clock_failures"):
                        await conn.execute(defer.reset, row[defer.key])
            except Exception as exc:  # noqa: BLE001 - deferred, counted, logged and audited
                failures = await _defer(conn, defer, row, now, exc)
                if on_failure is None:
                    continue
                try:
                    async with conn.transaction():
                        outcome.extend(await on_failure(row, failures, exc))
                except Exception as also:  # noqa: BLE001 - the deferral above stands
                    if is_transient(also):
                        raise
                    log.error("clock.on_failure_failed", child_id=row["child_id"], error=repr(also))
    return outcome


_ALERT_DEFERRAL = Deferral(
    "UPDATE alerts SET next_due_at = $2, clock_failures = clock_failures + 1,"
    " last_clock_error = $3 WHERE alert_id = $1 RETURNING clock_failures",
    "alert_id",
    "clock.advance_failed",
    "alert.clock_error",
    "alert",
    "UPDATE alerts SET clock_failures = 0, last_clock_error = NULL WHERE alert_id = $1",
)

_INSERT_NOTIFICATIONS = """
INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id, org_code,
                           channel, address, subject, body, status, next_attempt_at, created_at)
SELECT n.id, $1, $2, n.step_key, n.contact_id, n.org_code, n.channel, n.address, n.subject,
       n.body, 'pending', $3, $3
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[])
     AS n(id, step_key, contact_id, org_code, channel, address, subject, body)
ON CONFLICT (alert_id, step_key, contact_id, channel) DO NOTHING
RETURNING notification_id, step_key, contact_id, channel
"""


async def _in_savepoint(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    failed_event: str,
    step: Callable[[], Awaitable[T]],
) -> T | None:
    """`step()` in a savepoint, for one of the ways a failing alert is still told of: if it
    fails for a reason of its own, it is logged and the others still run; a transient failure
    is the caller's to retry."""
    try:
        async with conn.transaction():
            return await step()
    except Exception as also:  # noqa: BLE001 - the other ways of telling still run
        if is_transient(also):
            raise
        log.error(
            failed_event,
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            error=repr(also),
        )
        return None


class ClockStore:
    """Applies the pure escalation clock to the alerts in Postgres."""

    def __init__(self, config: GoldenHourConfig, ack_links: AckLinks | None = None) -> None:
        self.config = config
        self.ack_links = ack_links
        self.tz = ZoneInfo(config.timezone)
        self.sharing = Sharing(config, self.tz)
        self._policies: dict[tuple[str, str], Policy] = {}
        self.policies_digest = hashlib.sha256(
            json.dumps(
                {k: p.model_dump(mode="json") for k, p in config.policies.items()}, sort_keys=True
            ).encode()
        ).hexdigest()[:16]

    async def wake_replanned(self, conn: asyncpg.Connection) -> int:
        """Wake every live alert whose next wake was planned under other policies (a deploy
        that changed them): a step inserted, already due, fires now and not at that wake."""
        status = await conn.execute(
            "UPDATE alerts SET next_due_at = now(), updated_at = now()"
            " WHERE status <> 'resolved' AND planned_with IS DISTINCT FROM $1",
            self.policies_digest,
        )
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
        data = event.data
        assert isinstance(data, AbsenceReported)
        anchor_at, ahead = anchor(data.last_seen_at, record.received_at)
        alert = await self.live_alert(conn, event.child_id, MISSING)
        if alert is not None:
            alert = await self._update(conn, alert, record, anchor_at, ahead)
            await self._flag_ahead(conn, alert, record, ahead, now)
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
        if ahead:
            alert = await self.live_alert(conn, event.child_id, MISSING)
            if alert is not None:
                await self._flag_ahead(conn, alert, record, ahead, now)
        return outcome

    async def _flag_ahead(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        record: IntakeRecord,
        ahead: timedelta | None,
        now: datetime,
    ) -> None:
        """On the timeline: the last-seen time given was after the report was accepted, so the
        clock runs from the report's time instead (a fast clock on the reporter's device)."""
        if ahead is None:
            return
        data = record.event.data
        assert isinstance(data, AbsenceReported)
        given = data.last_seen_at.astimezone(self.tz).strftime("%H:%M:%S")
        detail = (
            f"last seen given as {given}, {round(ahead.total_seconds())} s after the report"
            " was accepted: the clock runs from the time of the report"
        )
        await conn.execute(
            "INSERT INTO alert_steps (alert_id, step_key, due_at, status, decided_at, detail,"
            " policy) VALUES ($1, $2, $3, 'fired', $3, $4, $5) ON CONFLICT DO NOTHING",
            alert["alert_id"],
            LAST_SEEN_AHEAD,
            now,
            detail,
            alert["policy"],
        )
        await _audit(
            conn,
            "alert.last_seen_ahead",
            alert["child_id"],
            alert["alert_id"],
            {
                "event_id": str(record.event.event_id),
                "reported_last_seen_at": data.last_seen_at.isoformat(),
                "received_at": record.received_at.isoformat(),
                "ahead_s": ahead.total_seconds(),
            },
        )
        log.warning(
            "alert.last_seen_ahead",
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            ahead_s=ahead.total_seconds(),
        )

    async def live_alert(
        self, conn: asyncpg.Connection, child_id: str, kind: str
    ) -> asyncpg.Record | None:
        """The child's live alert of `kind`, locked."""
        return await conn.fetchrow(
            "SELECT * FROM alerts WHERE child_id = $1 AND kind = $2 AND status <> 'resolved'"
            " FOR UPDATE",
            child_id,
            kind,
        )

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
        live = await self.live_alert(conn, child_id, kind)
        if live is not None:
            log.info(
                "alert.already_live",
                alert_id=str(live["alert_id"]),
                child_id=child_id,
                kind=kind,
                **(cause or {}),
            )
            return Outcome()
        # The placement first, held: a move or a transfer waits for this alert and then moves
        # it too, and a read that waited on one reads the child as it left it.
        placement = await current_placement(conn, child_id)
        child = await conn.fetchrow("SELECT * FROM children WHERE child_id = $1", child_id)
        if child is None:
            log.warning("clock.unknown_child", child_id=child_id, kind=kind)
            return Outcome()
        alert_id = uuid.uuid4()
        # Six digits at least: with the per-number and per-alert limits on wrong replies a
        # guesser gets a few dozen tries at a million codes. Never nine digits: those are the
        # benchmark's seeded alerts.
        for digits in (6, 6, 6, 7, 7, 8):
            code = f"{secrets.randbelow(10**digits):0{digits}d}"
            try:
                async with conn.transaction():  # a savepoint: a taken code only retries
                    alert = await conn.fetchrow(
                        """
                        INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy,
                            anchor_at, last_seen_location, circumstances, clothing, placement_id,
                            care_home, local_authority, ack_code, opened_at, next_due_at, facts,
                            reported_last_seen_at)
                        VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                                $14, $6, $15, $16)
                        RETURNING *
                        """,
                        alert_id,
                        child_id,
                        kind,
                        child["risk_level"],
                        kind if kind != MISSING else child["risk_level"],
                        anchor_at,
                        last_seen_location,
                        circumstances,
                        clothing,
                        placement["placement_id"] if placement else placement_id,
                        placement["care_home"] if placement else None,
                        child["local_authority"],
                        code,
                        now,
                        facts or {},
                        reported_last_seen_at,
                    )
                break
            except asyncpg.UniqueViolationError:
                continue
        else:
            raise RuntimeError("no free acknowledgement code")
        await _audit(
            conn,
            "alert.raised",
            child_id,
            alert_id,
            {
                **(cause or {}),
                "kind": kind,
                "risk_level": child["risk_level"],
                "anchor_at": anchor_at.isoformat(),
            },
        )
        log.info(
            "alert.raised", alert_id=str(alert_id), child_id=child_id, kind=kind, **(cause or {})
        )
        outcome = Outcome(
            [
                AlertRaised(
                    occurred_at=now,
                    child_id=child_id,
                    alert_id=alert_id,
                    kind=kind,
                    risk_level=alert["risk_level"],
                    anchor_at=anchor_at,
                    policy=alert["policy"],
                )
            ]
        )
        outcome.extend(await self._advance_or_leave(conn, alert, now))
        return outcome

    async def _update(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        record: IntakeRecord,
        anchor_at: datetime,
        ahead: timedelta | None,
    ) -> asyncpg.Record:
        """A second report while open: an earlier last-seen time moves the clock earlier."""
        data = record.event.data
        assert isinstance(data, AbsenceReported)
        row = await conn.fetchrow(
            """
            UPDATE alerts SET
                anchor_at = LEAST(anchor_at, $2),
                next_due_at = CASE WHEN $2 < anchor_at THEN $2 ELSE next_due_at END,
                last_seen_location = COALESCE($3, last_seen_location),
                circumstances = COALESCE($4, circumstances),
                clothing = COALESCE($5, clothing),
                reported_last_seen_at = COALESCE($6, reported_last_seen_at),
                updated_at = now()
            WHERE alert_id = $1
            RETURNING *
            """,
            alert["alert_id"],
            anchor_at,
            data.last_seen_location,
            data.circumstances,
            data.clothing,
            data.last_seen_at if ahead else None,
        )
        await _audit(
            conn,
            "alert.updated",
            alert["child_id"],
            alert["alert_id"],
            {"event_id": str(record.event.event_id)},
        )
        return row

    async def on_located(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> Outcome:
        """Resolve the missing alert and any welfare concern, standing everyone told down."""
        data = record.event.data
        assert isinstance(data, ChildLocated)
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
        alerts = await conn.fetch(
            "SELECT * FROM alerts WHERE child_id = $1 AND kind = ANY($2) AND status <> 'resolved'"
            " FOR UPDATE",
            child_id,
            list(kinds),
        )
        for alert in alerts:
            await conn.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolution = $3,"
                " next_due_at = NULL, updated_at = now() WHERE alert_id = $1",
                alert["alert_id"],
                at,
                reason,
            )
            await conn.execute(
                "UPDATE notifications SET status = 'cancelled', updated_at = now()"
                " WHERE alert_id = $1 AND status = 'pending'",
                alert["alert_id"],
            )
            # After the pending messages are cancelled, or it would cancel itself.
            outcome.events += await self._share(conn, alert, "Cancel", now)
            facts = self._facts(alert)
            sms = messages.sms_closed(facts, at, reason, self.tz)
            email = messages.email_closed(facts, at, reason, self.tz)
            # Whoever was called hears the stand-down by SMS: a call for it would be one more
            # interruption for someone who may be out looking for the child.
            told = list(
                {
                    (r.contact_id, "sms" if ch == "voice" else ch): Delivery(
                        r, "sms" if ch == "voice" else ch, STAND_DOWN
                    )
                    for r, ch in await self._told(conn, alert["alert_id"])
                }.values()
            )
            outcome.events += await self._insert(
                conn, alert, told, now, {"sms": ("", sms), "email": email}
            )
            await conn.execute(
                "INSERT INTO alert_steps (alert_id, step_key, due_at, status, decided_at, detail)"
                " VALUES ($1, $2, $3, 'fired', $3, $4) ON CONFLICT DO NOTHING",
                alert["alert_id"],
                STAND_DOWN,
                now,
                f"resolved: {reason}",
            )
            await _audit(
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
    ) -> list:
        """Share (or update, or cancel) the alert with the neighbours, in a savepoint: a failure
        there is audited and never holds back the alert itself."""
        try:
            async with conn.transaction():
                if follow_up is None:
                    return await self.sharing.share(conn, alert, now)
                return await self.sharing.follow_up(conn, alert, follow_up, now)
        except Exception as exc:  # noqa: BLE001 - the child's own agencies come first
            log.error(
                "shared_alert.failed",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                error=repr(exc),
            )
            await _audit(
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
        child = await conn.fetchval(
            "UPDATE children SET risk_level = $2, updated_at = now()"
            " WHERE child_id = $1 AND risk_level <> $2 RETURNING true",
            child_id,
            level,
        )
        alerts = await conn.fetch(
            "SELECT * FROM alerts WHERE child_id = $1 AND kind = $2 AND status <> 'resolved'"
            " AND risk_level <> $3 FOR UPDATE",
            child_id,
            MISSING,
            level,
        )
        for alert in alerts:
            # Steps recorded by position are re-keyed while the policy that decided them is
            # still the alert's: afterwards their positions would name the new policy's steps.
            await self._decided(conn, alert, self._policy(alert["kind"], alert["risk_level"]))
            # Waking the alert now lets the clock re-plan under the new policy at once; a step
            # of it due before `policy_since` is a catch-up (see streams.escalation).
            await conn.execute(
                "UPDATE alerts SET risk_level = $2, policy = $2, policy_since = $3,"
                " next_due_at = $3, updated_at = now() WHERE alert_id = $1",
                alert["alert_id"],
                level,
                now,
            )
            await _audit(
                conn,
                "alert.policy_changed",
                child_id,
                alert["alert_id"],
                {"policy_before": alert["policy"], "policy": level, "reason": reason},
            )
        if not child and not alerts:
            return
        await _audit(
            conn, "child.risk_changed", child_id, None, {"risk_level": level, "reason": reason}
        )
        log.info("child.risk_changed", child_id=child_id, risk_level=level, reason=reason)

    # --- the clock ----------------------------------------------------------------------

    async def claim_due(self, conn: asyncpg.Connection, now: datetime, limit: int) -> Outcome:
        """Claim up to `limit` due alerts by index, skipping those another worker holds."""
        return await claim_each(
            conn,
            "SELECT * FROM alerts WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2"
            " FOR UPDATE SKIP LOCKED",
            now,
            limit,
            lambda alert: self.advance(conn, alert, now),
            _ALERT_DEFERRAL,
            lambda alert, failures, exc: self._failing(conn, alert, failures, exc, now),
        )

    async def _failing(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        failures: int,
        exc: Exception,
        now: datetime,
    ) -> Outcome:
        """An alert whose processing failed: its first-step recipients still hear of it by the
        plainest message there is, and after a few failures the operations contacts are told."""
        outcome = Outcome()
        if alert["first_fired_at"] is None:
            outcome.events += (
                await _in_savepoint(
                    conn, alert, "clock.fallback_failed", lambda: self._fallback(conn, alert, now)
                )
                or []
            )
        if failures >= TELL_OPERATIONS_AFTER:
            await _in_savepoint(
                conn,
                alert,
                "clock.operations_not_told",
                lambda: self._tell_operations(conn, alert, failures, exc, now),
            )
        return outcome

    async def _tell_operations(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        failures: int,
        exc: Exception,
        now: datetime,
    ) -> None:
        """Once per alert: the operations contacts hear that its clock keeps failing."""
        fallback = (
            "Its first-step recipients were sent a plain fallback message.\n"
            if alert["first_fired_at"] is None
            else ""
        )
        told = await tell_operations(
            conn,
            self.config,
            f"clock_failing:{alert['alert_id']}",
            f"Golden Hour: alert for case {alert['child_id']} keeps failing",
            f"The escalation clock could not process the {alert['kind']} alert"
            f" {alert['alert_id']} for case {alert['child_id']} {failures} times in a row; it"
            f" keeps retrying with backoff.\n\nLast error: {repr(exc)[:500]}\n{fallback}",
            now,
        )
        if told:
            await _audit(
                conn,
                "alert.clock_failing",
                alert["child_id"],
                alert["alert_id"],
                {"failures": failures, "operations_told": len(told)},
            )
            log.error(
                "alert.clock_failing",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                failures=failures,
            )

    async def _fallback(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> list[NotificationRequested]:
        """The first notify step's recipients, by SMS and email, with no more than the case
        reference, the kind, the last-seen time and the acknowledgement code; once per contact
        and channel (the message rows' unique key)."""
        policy = self._policy(alert["kind"], alert["risk_level"])
        step = next((s for s in policy.steps if s.notify), None)
        if step is None:
            return []
        resolve = resolver(self.config, alert["local_authority"], alert["care_home"])
        recipients = {r.contact_id: r for target in step.notify for r in resolve(target)}
        seen = alert["anchor_at"].astimezone(self.tz).strftime("%H:%M %d/%m")
        what = f"case {alert['child_id']} {alert['kind'].replace('_', ' ')}, last seen {seen}"
        bodies = {
            "sms": ("", f"GOLDEN HOUR ALERT {what}. Reply ACK {alert['ack_code']}"),
            "email": (
                f"Golden Hour alert: case {alert['child_id']}",
                f"Golden Hour alert: {what}.\n\nAcknowledge by replying to the SMS with"
                f" ACK {alert['ack_code']}, or in the console.\n",
            ),
        }
        cols: list[list] = [[] for _ in range(8)]
        for r in recipients.values():
            for channel in ("sms", "email"):
                subject, body = bodies[channel]
                values = (
                    uuid.uuid4(),
                    FALLBACK,
                    r.contact_id,
                    r.org_code,
                    channel,
                    r.phone if channel == "sms" else r.email,
                    subject,
                    body,
                )
                for col, value in zip(cols, values, strict=True):
                    col.append(value)
        rows = await conn.fetch(
            _INSERT_NOTIFICATIONS, alert["alert_id"], alert["child_id"], now, *cols
        )
        if rows:
            FALLBACKS.inc(len(rows))
            await _audit(
                conn,
                "alert.fallback_sent",
                alert["child_id"],
                alert["alert_id"],
                {"told": sorted({f"{r['contact_id']}/{r['channel']}" for r in rows})},
            )
            log.warning(
                "alert.fallback_sent",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                messages=len(rows),
            )
        return requested(alert, rows, now)

    async def _advance_or_leave(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> Outcome:
        """Advance an alert just opened or updated by an event. Should that fail for this alert,
        the event still stands and the alert stays due, so the claimers retry it (and send the
        fallback) rather than the event failing with nobody told."""
        try:
            async with conn.transaction():
                return await self.advance(conn, alert, now)
        except Exception as exc:  # noqa: BLE001 - transient ones go back to the event's retry
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
        decided = await self._decided(conn, alert, policy)
        state = ClockState(
            anchor_at=alert["anchor_at"],
            acknowledged=alert["status"] == "acknowledged",
            resolved=alert["status"] == "resolved",
            decided=decided,
            first_fired_at=alert["first_fired_at"],
            renotify_done=alert["renotify_done"],
            escalate=alert["escalate_requested_at"] is not None,
            policy_since=alert["policy_since"],
        )
        decision = plan(policy, state, now)
        outcome = Outcome()
        if not decision.empty:
            wanted = decision.renotify_round is not None or decision.catch_up
            told = await self._told(conn, alert["alert_id"]) if wanted else []
            resolve = resolver(self.config, alert["local_authority"], alert["care_home"])
            allotted = allot(policy, decision, resolve, told)
            outcome.events += await self._insert(
                conn, alert, allotted.items, now, None, renotify_max=policy.renotify_max
            )
            outcome.events += await self._record_steps(conn, alert, policy, decision, allotted, now)
            if any(step_of(policy, k).share for k in decision.fire):
                outcome.events += await self._share(conn, alert, None, now)
        fired_notify = any(step_of(policy, k).notify for k in decision.fire)
        await conn.execute(
            """
            UPDATE alerts SET next_due_at = $2,
                first_fired_at = CASE WHEN $3 THEN COALESCE(first_fired_at, $4)
                                      ELSE first_fired_at END,
                renotify_done = GREATEST(renotify_done, $5),
                escalate_requested_at = NULL, escalate_requested_by = NULL, updated_at = now(),
                planned_with = $6
            WHERE alert_id = $1
            """,
            alert["alert_id"],
            decision.next_due_at,
            fired_notify,
            now,
            decision.renotify_round or 0,
            self.policies_digest,
        )
        return outcome

    async def _decided(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, policy: Policy
    ) -> frozenset[str]:
        """The keys of the steps the alert decided, under any policy. Rows recorded by position
        (`s0`, `s1`…, by an alert opened before steps had stable keys) are first re-keyed as
        the steps of `policy` at those positions, the policy that decided them."""
        rows = await conn.fetch(
            "SELECT step_key, policy FROM alert_steps WHERE alert_id = $1", alert["alert_id"]
        )
        legacy = legacy_keys(policy, [r["step_key"] for r in rows if r["policy"] is None])
        keys = {r["step_key"] for r in rows if r["step_key"] not in legacy}
        if legacy:
            await conn.execute(
                """
                UPDATE alert_steps SET step_key = m.new, policy = $4,
                    detail = concat_ws(' ', detail, '(recorded as ' || m.old || ')')
                FROM unnest($2::text[], $3::text[]) AS m(old, new)
                WHERE alert_id = $1 AND step_key = m.old AND policy IS NULL
                """,
                alert["alert_id"],
                list(legacy),
                list(legacy.values()),
                alert["policy"],
            )
            log.info(
                "alert.steps_rekeyed",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                keys=legacy,
            )
        return frozenset(keys | set(legacy.values()))

    async def _record_steps(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        policy: Policy,
        decision: Plan,
        allotted: Allotment,
        now: datetime,
    ) -> list[StepFired]:
        planned = allotted.items
        by_step: dict[str, list[str]] = {}
        for d in planned:
            by_step.setdefault(d.step_key, []).append(f"{d.recipient.contact_id}/{d.channel}")
        rows = []
        for key in decision.fire:
            step = step_of(policy, key)
            told = by_step.get(key)
            withheld = allotted.withheld.get(key)
            detail = (
                f"escalated now by {alert['escalate_requested_by']}; "
                if key == decision.escalated
                else ""
            ) + (
                "shared alert to neighbouring authorities' subscribers"
                if step.share
                else "told: " + ", ".join(told)
                if told
                else "told: nobody new"
            )
            if withheld:
                # The catch-up rule: due before the policy changed, it tells each contact once.
                detail += "; not told again (already told by this alert): " + ", ".join(
                    f"{contact}/{channel}" for contact, channel in withheld
                )
            rows.append(
                (alert["alert_id"], key, alert["anchor_at"] + step.after, "fired", now, detail)
            )
        for key in decision.skip:
            rows.append(
                (
                    alert["alert_id"],
                    key,
                    alert["anchor_at"] + step_of(policy, key).after,
                    "skipped",
                    now,
                    "acknowledged before it fell due",
                )
            )
        if decision.renotify_round is not None:
            key = renotify_key(decision.renotify_round)
            rows.append(
                (
                    alert["alert_id"],
                    key,
                    now,
                    "fired",
                    now,
                    "re-notified: " + ", ".join(by_step.get(key, [])),
                )
            )
        await conn.executemany(
            "INSERT INTO alert_steps"
            " (alert_id, step_key, due_at, status, decided_at, detail, policy)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [(*row, alert["policy"]) for row in rows],
        )
        fired = []
        for row in rows:
            if row[3] == "fired":
                fired.append(
                    StepFired(
                        occurred_at=now,
                        child_id=alert["child_id"],
                        alert_id=alert["alert_id"],
                        step_key=row[1],
                        contact_ids=sorted(
                            {d.recipient.contact_id for d in planned if d.step_key == row[1]}
                        ),
                    )
                )
            await _audit(
                conn,
                f"alert.step_{row[3]}",
                alert["child_id"],
                alert["alert_id"],
                {"step_key": row[1], "detail": row[5]},
            )
            log.info(
                f"alert.step_{row[3]}",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                step_key=row[1],
            )
        return fired

    async def _told(
        self, conn: asyncpg.Connection, alert_id: uuid.UUID
    ) -> list[tuple[Recipient, str]]:
        """Every (contact, channel) an alert has reached or is reaching, in first-told order."""
        rows = await conn.fetch(
            "SELECT contact_id, channel, min(created_at) AS first FROM notifications"
            " WHERE alert_id = $1 AND step_key <> $2 AND status <> 'cancelled'"
            # A neighbour's subscriber hears only the minimised shared alert, never ours.
            " AND subscription_id IS NULL"
            # Told by a step, not by a failover or a notice that someone could not be reached.
            " AND failover_of IS NULL AND step_key NOT LIKE 'unreachable.%'"
            " GROUP BY contact_id, channel ORDER BY first",
            alert_id,
            STAND_DOWN,
        )
        told = []
        for r in rows:
            found = self.config.contact(r["contact_id"])
            if found is None:
                continue  # the contact has left the directory since
            org, contact = found
            told.append(
                (Recipient(contact.id, org.code, contact.phone, str(contact.email)), r["channel"])
            )
        return told

    def _facts(self, alert: asyncpg.Record) -> messages.AlertFacts:
        return messages.alert_facts(alert, self.config)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        planned: list[Delivery],
        now: datetime,
        fixed: dict[str, tuple[str, str]] | None,
        renotify_max: int = 0,
    ) -> list[NotificationRequested]:
        """Write the message rows; their unique key makes a repeat a no-op."""
        if not planned:
            return []
        facts = self._facts(alert)
        if fixed is None and any(d.channel in ("sms", "voice") for d in planned):
            await record_withheld(conn, alert, "sms", messages.withheld_from_sms(facts), now)
        cols: list[list] = [[] for _ in range(8)]
        for d in planned:
            notification_id = uuid.uuid4()
            if fixed is not None:
                subject, body = fixed[d.channel]
            elif d.channel == "sms":
                subject = ""
                body = messages.sms_alert(facts, d.step_key, now, self.tz, renotify_max)
            elif d.channel == "voice":
                subject = ""
                body = messages.voice_alert(facts, d.step_key, now, self.tz, renotify_max)
            else:
                link = self.ack_links.url(notification_id) if self.ack_links else None
                subject, body = messages.email_alert(
                    facts, d.step_key, now, self.tz, renotify_max, link
                )
            address = d.recipient.phone if d.channel in ("sms", "voice") else d.recipient.email
            for col, value in zip(
                cols,
                (
                    notification_id,
                    d.step_key,
                    d.recipient.contact_id,
                    d.recipient.org_code,
                    d.channel,
                    address,
                    subject,
                    body,
                ),
                strict=True,
            ):
                col.append(value)
        rows = await conn.fetch(
            _INSERT_NOTIFICATIONS, alert["alert_id"], alert["child_id"], now, *cols
        )
        return requested(alert, rows, now)
