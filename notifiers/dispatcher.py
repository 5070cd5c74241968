"""The dispatcher: sends each message row once, over its channel, and keeps its state visible.

A message's life: pending → sending → sent → delivered / failed (or cancelled on stand-down).
Postgres is the record. A `notification.requested` event on Kafka is the fast path that wakes the
dispatcher (notifiers/consumer.py); a sweep of the pending index is the safety net that finds
anything Kafka did not bring (a lost event, a retry falling due, a lease left behind by a killed
dispatcher). Neither loop stops on any error, and no send's failure stops another send.

Exactly once: a row is claimed by a conditional UPDATE (only one claimer wins), and its lease is
recorded before the provider is called. A lease that expired (the dispatcher died mid-send) is
reconciled against the provider's own log before any resend, so a restart never sends twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from contracts.config import GoldenHourConfig
from contracts.derived import NotificationRequested
from infra.backoff import delay
from infra.settings import Settings
from infra.topics import Topics
from notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from notifiers.consumer import RequestConsumer
from notifiers.status import apply_status, audited_change, provider_status
from notifiers.subscription_health import WebhookSubscriptions

log = structlog.get_logger(__name__)

SENT = Counter("goldenhour_notifications_sent_total", "Messages handed to a provider", ["channel"])
RETRIED = Counter("goldenhour_notifications_retried_total", "Send attempts to retry", ["channel"])
FAILED = Counter("goldenhour_notifications_failed_total", "Messages given up", ["channel"])
SWEEP_FAILURES = Counter("goldenhour_dispatcher_sweep_failures_total", "Sweeps that raised")
LAST_SWEEP = Gauge(
    "goldenhour_dispatcher_last_sweep_timestamp_seconds", "When the last sweep completed"
)
TASK_FAILURES = Counter(
    "goldenhour_dispatcher_task_failures_total", "Send or re-poll tasks that raised", ["channel"]
)

MAX_ATTEMPTS = 10
BACKOFF_CAP_S = 60.0
# One sweep's bound: a database that stopped answering must not hold the safety net.
SWEEP_BOUND_S = 30.0

_CLAIM_ONE = """
UPDATE notifications SET status = 'sending', attempts = attempts + 1, lease_until = $2,
       updated_at = now()
WHERE notification_id = $1 AND status = 'pending' AND next_attempt_at <= $3
RETURNING *
"""

# A lease that ran out (its dispatcher died mid-send) is taken over by one claimer only.
_CLAIM_EXPIRED = """
UPDATE notifications SET lease_until = $2, updated_at = now()
WHERE notification_id = $1 AND status = 'sending' AND lease_until < $3
RETURNING *
"""

# Candidates only: each is claimed when a slot is free to send it, so no lease runs out while
# its message waits its turn behind a backlog.
_DUE = """
SELECT notification_id, channel FROM notifications
WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2
"""
_EXPIRED = """
SELECT notification_id, channel FROM notifications
WHERE status = 'sending' AND lease_until < $1 ORDER BY lease_until LIMIT $2
"""


# A delivery callback may have overtaken the send: never move a status backwards.
_MARK_SENT = audited_change(
    """UPDATE notifications SET provider_id = $2, lease_until = NULL,
        status = CASE WHEN status = 'sending' THEN $3 ELSE status END,
        sent_at = COALESCE(sent_at, now()),
        delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
        updated_at = now()
    WHERE notification_id = $1""",
    "system:dispatcher",
    "'notification.sent'",
    "$4::jsonb",
)
_MARK_FAILED = audited_change(
    """UPDATE notifications SET status = 'failed', lease_until = NULL, last_error = $2,
        updated_at = now()
    WHERE notification_id = $1""",
    "system:dispatcher",
    "'notification.failed'",
    "$3::jsonb",
)


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before the next attempt: exponential with full jitter, at least Retry-After."""
    return max(retry_after or 0.0, delay(attempts, 0.5, BACKOFF_CAP_S, rng))


def _retried(row: asyncpg.Record) -> bool:
    """A retry: the last attempt may have reached the provider before its answer was lost."""
    return row["attempts"] > 1  # the claim already counted this attempt


class Dispatcher:
    """Claims message rows and hands them to their channel."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: dict[str, Channel],
        public_url: str,
        repoll_after: timedelta,
        lease: timedelta = timedelta(seconds=60),
        webhooks: WebhookSubscriptions | None = None,
        concurrency: int = 32,
        sweep_every_s: float = 0.5,
    ) -> None:
        self.lease = lease
        self.webhooks = webhooks
        self.pool = pool
        self.channels = channels
        self.public_url = public_url.rstrip("/")
        self.repoll_after = repoll_after
        self.sweep_every_s = sweep_every_s
        self._slots = asyncio.Semaphore(concurrency)
        # The golden hour is measured by the SMS: email and webhooks cost several times an SMS
        # to send, so under load they take a few slots each and never crowd the SMS out.
        self._gates = {"email": asyncio.Semaphore(4), "webhook": asyncio.Semaphore(8)}
        self._tasks: set[asyncio.Task] = set()
        self._queued: set[uuid.UUID] = set()  # waiting for a slot or being sent here
        self._rng = random.Random()
        # A send past this is abandoned: its row stays leased and is reconciled on take-over.
        self._task_bound_s = lease.total_seconds() + 30.0
        self.last_sweep_at: float | None = None  # time.monotonic() of the last completed sweep
        self.last_sweep_error: str | None = None
        self.requests: RequestConsumer | None = None

    # --- entry points ---------------------------------------------------------------

    async def consume(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        session_timeout_s: float = 6.0,
        fetch_max_wait_ms: int = 50,
        *,
        config: GoldenHourConfig,
        topics: Topics | None = None,
    ) -> None:
        """Send each requested message as soon as its event arrives; never returns.

        `config` names the operations contacts told of a dead-lettered record; `topics`, when
        given, are created again if the broker lost them."""
        self.requests = RequestConsumer(
            self.pool,
            config,
            self._wake,
            bootstrap,
            topic,
            group_id,
            session_timeout_s=session_timeout_s,
            fetch_max_wait_ms=fetch_max_wait_ms,
            topics=topics,
        )
        await self.requests.run()

    def _wake(self, request: NotificationRequested) -> None:
        self._queue(request.notification_id, request.channel, self.send_requested)

    async def sweep_forever(self) -> None:
        """The safety net: due retries, requests Kafka did not bring, expired leases, re-polls.
        Survives any failure of a sweep, and backs off while they repeat."""
        failures = 0
        while True:
            try:
                async with asyncio.timeout(SWEEP_BOUND_S):
                    await self.sweep(datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - the safety net must never stop
                failures += 1
                SWEEP_FAILURES.inc()
                self.last_sweep_error = repr(exc)[:300]
                if failures == 1:
                    log.warning("dispatcher.sweep_failed", error=self.last_sweep_error)
                await asyncio.sleep(max(self.sweep_every_s, delay(failures, 0.2, 5.0, self._rng)))
                continue
            if failures:
                log.info("dispatcher.sweep_recovered", failures=failures)
            failures, self.last_sweep_error = 0, None
            self.last_sweep_at = time.monotonic()
            LAST_SWEEP.set_to_current_time()
            await asyncio.sleep(self.sweep_every_s)

    def sweep_problem(self, stale_after_s: float | None = None) -> str | None:
        """Why the sweep cannot be counted on now (it has not completed lately), or None."""
        stale_after_s = stale_after_s or max(5.0, 10 * self.sweep_every_s)
        if self.last_sweep_at is None:
            return f"no sweep completed yet ({self.last_sweep_error or 'starting'})"
        age = time.monotonic() - self.last_sweep_at
        if age > stale_after_s:
            return f"last sweep completed {age:.0f}s ago ({self.last_sweep_error or 'stuck'})"
        return None

    async def drain(self) -> None:
        """Wait for the sends in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- one cycle ------------------------------------------------------------------

    async def send_requested(
        self, notification_id: uuid.UUID, due_by: datetime | None = None
    ) -> None:
        """Claim the message if it is pending and due (by `due_by`, else now), and send it."""
        now = datetime.now(UTC)
        row = await self.pool.fetchrow(_CLAIM_ONE, notification_id, now + self.lease, due_by or now)
        if row is not None:
            await self._deliver(row, reconcile=_retried(row))

    async def take_over(self, notification_id: uuid.UUID, expired_by: datetime) -> None:
        """Claim a message whose lease ran out (by `expired_by`) and reconcile before sending."""
        now = datetime.now(UTC)
        row = await self.pool.fetchrow(
            _CLAIM_EXPIRED, notification_id, now + self.lease, expired_by
        )
        if row is not None:
            await self._deliver(row, reconcile=True)

    async def sweep(self, now: datetime) -> None:
        for row in await self.pool.fetch(_DUE, now, 200):
            self._queue(row["notification_id"], row["channel"], self.send_requested, now)
        for row in await self.pool.fetch(_EXPIRED, now, 200):
            self._queue(row["notification_id"], row["channel"], self.take_over, now)
        stale = await self.pool.fetch(
            "UPDATE notifications SET updated_at = now() WHERE notification_id IN ("
            " SELECT notification_id FROM notifications WHERE status = 'sent'"
            " AND updated_at < $1 AND channel = ANY($2)"
            " ORDER BY updated_at LIMIT 200 FOR UPDATE SKIP LOCKED)"
            " RETURNING notification_id, channel, provider_id",
            now - self.repoll_after,
            [name for name, ch in self.channels.items() if ch.reports_delivery],
        )
        for row in stale:
            self._spawn(self._repoll(row), row["channel"], row["notification_id"])

    def _queue(self, notification_id: uuid.UUID, channel: str, send, *args) -> None:
        """Send once a slot is free, unless this message already waits here for one."""
        if notification_id in self._queued:
            return
        self._queued.add(notification_id)
        task = self._spawn(send(notification_id, *args), channel, notification_id)
        task.add_done_callback(lambda _: self._queued.discard(notification_id))

    def _spawn(self, coro, channel: str | None, notification_id: uuid.UUID) -> asyncio.Task:
        task = asyncio.create_task(self._bounded(coro, channel, notification_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _bounded(self, coro, channel: str | None, notification_id: uuid.UUID) -> None:
        gate = self._gates.get(channel or "")
        async with gate or contextlib.nullcontext(), self._slots:
            try:
                async with asyncio.timeout(self._task_bound_s):
                    await coro
            except Exception as exc:  # noqa: BLE001 - one message's failure stops nothing else
                # The row stays leased; the sweep takes it up again when the lease expires,
                # and reconciles with the provider before any resend.
                TASK_FAILURES.labels(channel or "").inc()
                log.warning(
                    "dispatcher.task_failed",
                    notification_id=str(notification_id),
                    channel=channel,
                    error=repr(exc)[:500],
                )

    async def _webhook_failed(self, row: asyncpg.Record, error: str) -> None:
        if row["channel"] == "webhook" and self.webhooks:
            for notification_id in await self.webhooks.failed(row, error):
                self._queue(notification_id, "email", self.send_requested)

    def _message(self, row: asyncpg.Record, secret: str | None = None) -> OutboundMessage:
        key = f"{row['alert_id']}:{row['step_key']}:{row['contact_id']}:{row['channel']}"
        callback = None
        if row["channel"] == "sms":
            callback = f"{self.public_url}/api/v1/webhooks/twilio/status?n={row['notification_id']}"
        return OutboundMessage(
            notification_id=str(row["notification_id"]),
            idempotency_key=key,
            to=row["address"],
            subject=row["subject"],
            body=row["body"],
            status_callback_url=callback,
            sent_since=row["created_at"],
            signing_secret=secret,
        )

    async def _deliver(self, row: asyncpg.Record, reconcile: bool) -> None:
        channel = self.channels[row["channel"]]
        secret = None
        if row["channel"] == "webhook":
            secret = await self.webhooks.secret(row) if self.webhooks else None
            if secret is None:
                await self._fail(row, "the subscription is no longer active", log)
                return
        msg = self._message(row, secret)
        bound = log.bind(
            alert_id=str(row["alert_id"]),
            child_id=row["child_id"],
            notification_id=msg.notification_id,
            channel=row["channel"],
        )
        if reconcile:
            # The previous holder died mid-send: ask the provider before sending again.
            provider_id = await channel.find_sent(msg)
            if provider_id is not None:
                bound.info("notification.reconciled", provider_id=provider_id)
                await self._mark_sent(row, provider_id, "sent")
                return
        try:
            result = await channel.send(msg)
        except RetryableSendError as exc:
            await self._webhook_failed(row, str(exc))
            await self._retry_or_fail(row, str(exc), exc.retry_after, bound)
            return
        except PermanentSendError as exc:
            await self._webhook_failed(row, str(exc))
            await self._fail(row, str(exc), bound)
            return
        if row["channel"] == "webhook" and self.webhooks:
            await self.webhooks.succeeded(row)
        SENT.labels(row["channel"]).inc()
        await self._mark_sent(row, result.provider_id, result.status)
        bound.info("notification.sent", provider_id=result.provider_id, step_key=row["step_key"])

    async def _mark_sent(self, row: asyncpg.Record, provider_id: str, status: str) -> None:
        await self.pool.execute(
            _MARK_SENT,
            row["notification_id"],
            provider_id,
            status,
            {
                "contact_id": row["contact_id"],
                "channel": row["channel"],
                "provider_id": provider_id,
            },
        )

    async def _retry_or_fail(self, row, error: str, retry_after: float | None, bound) -> None:
        if row["attempts"] >= MAX_ATTEMPTS:
            await self._fail(row, f"gave up after {row['attempts']} attempts: {error}", bound)
            return
        RETRIED.labels(row["channel"]).inc()
        wait_s = backoff(row["attempts"], retry_after, self._rng)
        await self.pool.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3), updated_at = now()"
            " WHERE notification_id = $1 AND status = 'sending'",
            row["notification_id"],
            error,
            wait_s,
        )
        bound.warning(
            "notification.retry", attempts=row["attempts"], delay_s=round(wait_s, 2), error=error
        )

    async def _fail(self, row, error: str, bound) -> None:
        FAILED.labels(row["channel"]).inc()
        await self.pool.execute(_MARK_FAILED, row["notification_id"], error, {"error": error})
        bound.error("notification.failed", error=error)

    async def _repoll(self, row: asyncpg.Record) -> None:
        """A message left in `sent` without a callback: ask the provider where it is."""
        status = await self.channels[row["channel"]].poll(row["provider_id"])
        ours = provider_status(status) if status else None
        if ours is not None and ours != "sent":
            await apply_status(self.pool, ours, None, notification_id=row["notification_id"])


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a loop that must never stop; should it ever raise, start it again."""
    while True:
        try:
            await loop()
        except Exception as exc:  # noqa: BLE001 - the loops catch their own; this is the last net
            log.error("dispatcher.loop_restarted", loop=name, error=repr(exc)[:500])
        await asyncio.sleep(1.0)


async def run_dispatcher(
    dispatcher: Dispatcher, bootstrap: str, topics: Topics, group: str, settings: Settings
) -> None:
    """Consume and sweep until cancelled, then let the sends in flight finish."""

    def consume() -> Awaitable[None]:
        return dispatcher.consume(
            bootstrap,
            topics.notifications,
            group,
            settings.kafka_session_timeout_s,
            settings.fetch_max_wait_ms,
            config=settings.config,
            topics=topics,
        )

    tasks = [
        asyncio.create_task(_supervised("consume", consume), name="consume"),
        asyncio.create_task(_supervised("sweep", dispatcher.sweep_forever), name="sweep"),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await dispatcher.drain()
