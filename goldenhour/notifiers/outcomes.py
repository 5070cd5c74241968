"""What the dispatcher writes once an attempt has an outcome: sent, a retry, cancelled or failed.

Every mark is fenced by the row's claim (infra/notifications.py): a holder whose lease was
taken over logs `notification.lease_lost` and writes nothing. When to retry and when to stop
is notifiers/retry_rules.py.
"""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg
from prometheus_client import Counter

from goldenhour.infra import notifications
from goldenhour.infra.metrics import NOTIFICATION_OUTCOMES
from goldenhour.notifiers import db
from goldenhour.notifiers import retry_rules as rules
from goldenhour.notifiers.base import Channel, LookFailed, RetryableSendError
from goldenhour.notifiers.voice import CallbacksAwaited

RETRIED = Counter("goldenhour_notifications_retried_total", "Send attempts to retry", ["channel"])
FAILED = Counter("goldenhour_notifications_failed_total", "Messages given up", ["channel"])
CANCELLED = Counter(
    "goldenhour_notifications_cancelled_total",
    "Messages no longer retried because their step stopped mattering",
    ["channel"],
)

# How long after an ambiguous outcome the provider may still be creating the message, on top of
# its timeout (a list lagging 30 s behind its writes still shows it then).
PROCESSING_ALLOWANCE = timedelta(seconds=40)


def attempted(row: asyncpg.Record) -> rules.Attempted:
    """What the retry rules need to know of a claimed row."""
    return rules.Attempted(
        channel=row["channel"],
        step_key=row["step_key"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        alert_id=row["alert_id"],
        alert_status=row["alert_status"],
    )


def timeout_of(channel: Channel) -> float:
    """The channel's own bound on one provider call, 0 when it has none."""
    return float(getattr(channel, "timeout", 0.0) or 0.0)


class Outcomes:
    """Records the outcome of one attempt on its row, fenced by the attempt's claim."""

    def __init__(
        self, pool: asyncpg.Pool, processing_allowance: timedelta, rng: random.Random
    ) -> None:
        self.pool = pool
        self.processing_allowance = processing_allowance
        self._rng = rng

    async def sent(self, row: asyncpg.Record, provider_id: str, status: str, bound) -> bool:
        """Mark the row sent; False when its claim was taken over."""
        detail = {"contact_id": row["contact_id"], "channel": row["channel"]}
        marked = await db.mark_sent(
            self.pool,
            row["notification_id"],
            row["claim"],
            provider_id,
            status,
            {**detail, "provider_id": provider_id},
        )
        if not marked:
            bound.warning(
                "notification.lease_lost", claim=row["claim"], mark="sent", provider_id=provider_id
            )
            return False
        NOTIFICATION_OUTCOMES.labels(row["channel"], status).inc()
        return True

    async def retry_or_stop(
        self, row: asyncpg.Record, exc: RetryableSendError, channel: Channel, bound
    ) -> None:
        """Put the row back to wait for its next try, or stop it when the rules say so."""
        error = str(exc)
        now = await self.pool.fetchval(db.NOW)
        decision = rules.after_failure(attempted(row), exc.retry_after, now, self._rng)
        if decision.action == "cancel" and (exc.ambiguous or isinstance(exc, LookFailed)):
            # The provider may have it: look (again) once it has had time, so the row says
            # what happened (sent, or cancelled by the same rule then).
            decision = rules.Decision("retry", wait_s=0.0)
        if decision.action != "retry":
            reason = f"{decision.reason}: {error}"
            await self.stop(row, rules.Decision(decision.action, reason), bound)
            return
        if isinstance(exc, CallbacksAwaited):
            # Nothing failed: a call's callbacks are due any moment, so the look comes again
            # soon, however many tries the message has had.
            decision = rules.Decision("retry", wait_s=exc.look_again_s)
        RETRIED.labels(row["channel"]).inc()
        NOTIFICATION_OUTCOMES.labels(row["channel"], "retried").inc()
        look_s = None
        if exc.ambiguous:
            # The provider may still be creating it: neither look for it nor resend before it
            # has had its timeout and its processing time.
            look_s = timeout_of(channel) + self.processing_allowance.total_seconds()
        marked = await notifications.mark_retry(
            self.pool,
            row["notification_id"],
            row["claim"],
            error,
            decision.wait_s,
            look_s,
            look_failed=isinstance(exc, LookFailed),
        )
        if marked is None:
            bound.warning("notification.lease_lost", claim=row["claim"], mark="retry")
            return
        bound.warning(
            "notification.retry",
            attempts=row["attempts"],
            delay_s=round(decision.wait_s, 2),
            ambiguous=exc.ambiguous,
            next_attempt_at=marked["next_attempt_at"].isoformat(),
            error=error,
        )

    async def stop(self, row: asyncpg.Record, decision: rules.Decision, bound) -> None:
        """End the row's tries as the decision says: cancelled, or failed."""
        if decision.action == "cancel":
            reason = decision.reason or "no longer needed"
            done = await db.mark_ended(
                self.pool,
                row["notification_id"],
                row["claim"],
                "cancelled",
                reason,
                {"reason": reason},
            )
            if not done:
                bound.warning("notification.lease_lost", claim=row["claim"], mark="cancelled")
                return
            CANCELLED.labels(row["channel"]).inc()
            NOTIFICATION_OUTCOMES.labels(row["channel"], "cancelled").inc()
            bound.info("notification.cancelled", reason=reason, attempts=row["attempts"])
            return
        await self.fail(row, decision.reason or "failed", bound)

    async def fail(self, row, error: str, bound, code: int | None = None) -> None:
        """Give the row up for good."""
        done = await db.mark_ended(
            self.pool,
            row["notification_id"],
            row["claim"],
            "failed",
            error,
            {"error": error, "code": code},
        )
        if not done:
            bound.warning("notification.lease_lost", claim=row["claim"], mark="failed")
            return
        FAILED.labels(row["channel"]).inc()
        NOTIFICATION_OUTCOMES.labels(row["channel"], "failed").inc()
        bound.error("notification.failed", error=error, code=code, attempts=row["attempts"])
