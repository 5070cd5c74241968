"""An alert whose clock keeps failing is still told of: its first-step recipients get the
plainest message there is, and after a few failures in a row the operations contacts hear."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg
import structlog
from prometheus_client import Counter

from goldenhour.contracts.alert_kinds import FALLBACK
from goldenhour.contracts.derived import NotificationRequested
from goldenhour.contracts.policy import Policy
from goldenhour.infra import rota_changes
from goldenhour.infra.db import audit
from goldenhour.infra.dead_letters import tell_operations
from goldenhour.streams.alert_messages import AlertMessages, outgoing
from goldenhour.streams.claims import in_savepoint
from goldenhour.streams.escalation import Delivery
from goldenhour.streams.outcome import Outcome
from goldenhour.streams.recipients import resolver
from goldenhour.streams.requests import requested
from goldenhour.wording import notices

log = structlog.get_logger(__name__)

# Failures in a row after which the operations contacts hear of a failing alert (once).
TELL_OPERATIONS_AFTER = 3

FALLBACKS = Counter(
    "goldenhour_clock_fallback_messages_total",
    "Plain first-step messages written for alerts that could not fire their first step",
)


class FailingAlerts:
    """What happens, besides the deferral, to an alert whose processing failed."""

    def __init__(self, alert_messages: AlertMessages, policy: Callable[[str, str], Policy]):
        self.messages = alert_messages
        self.config = alert_messages.config
        self.tz = alert_messages.tz
        self.policy = policy

    async def failing(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        failures: int,
        exc: Exception,
        now: datetime,
    ) -> Outcome:
        """Its first-step recipients still hear of it by the plainest message there is, and
        after a few failures the operations contacts are told."""
        outcome = Outcome()
        if alert["first_fired_at"] is None:
            outcome.events += (
                await in_savepoint(
                    conn, alert, "clock.fallback_failed", lambda: self.fallback(conn, alert, now)
                )
                or []
            )
        if failures >= TELL_OPERATIONS_AFTER:
            await in_savepoint(
                conn,
                alert,
                "clock.operations_not_told",
                lambda: self.tell_operations(conn, alert, failures, exc, now),
            )
        return outcome

    async def tell_operations(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        failures: int,
        exc: Exception,
        now: datetime,
    ) -> None:
        """Once per alert: the operations contacts hear that its clock keeps failing."""
        subject, body = notices.clock_failing(
            alert["child_id"],
            alert["kind"],
            alert["alert_id"],
            failures,
            repr(exc)[:500],
            fallback_sent=alert["first_fired_at"] is None,
        )
        told = await tell_operations(
            conn, self.config, f"clock_failing:{alert['alert_id']}", subject, body, now
        )
        if told:
            await audit(
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

    async def fallback(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> list[NotificationRequested]:
        """The first notify step's recipients, by SMS and email, with no more than the case
        reference, the kind, the last-seen time and the acknowledgement code; once per contact
        and channel (the message rows' unique key)."""
        policy = self.policy(alert["kind"], alert["risk_level"])
        step = next((s for s in policy.steps if s.notify), None)
        if step is None:
            return []
        changes = await rota_changes.for_resolving(conn, self.config, now)
        resolve = resolver(self.config, alert["local_authority"], alert["care_home"], now, changes)
        recipients = {r.contact_id: r for target in step.notify for r in resolve(target)}
        texts = notices.fallback(
            alert["child_id"], alert["kind"], alert["anchor_at"], alert["ack_code"], self.tz
        )
        planned = [
            Delivery(r, channel, FALLBACK)
            for r in recipients.values()
            for channel in ("sms", "email")
        ]
        rows = await self.messages.queued(
            conn, alert, [outgoing(d, *texts[d.channel]) for d in planned], now
        )
        if rows:
            FALLBACKS.inc(len(rows))
            await audit(
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
