"""The dispatcher: sends each message row once, over its channel, and keeps its state visible.

A message's life: pending → sending → sent → delivered / failed (or cancelled once its step no
longer matters). Postgres is the record. A `notification.requested` event on Kafka is the fast
path that wakes the dispatcher (notifiers/consumer.py); a sweep of each channel's pending index
is the safety net that finds anything Kafka did not bring (a lost event, a retry falling due, a
lease left behind by a killed dispatcher). Neither loop stops on any error, and no send's failure
stops another send; each channel sends on slots of its own, so no backlog starves another.

Once: a row is claimed by a conditional UPDATE (one claimer wins) that increments its fencing
token, `claim`; every lease is the database's clock. Just before the provider is called the
holder checks that its claim is current and its lease unexpired, and every mark presents the
token, so a holder whose lease was taken over neither sends nor marks. After an outcome that may
have reached the provider, nobody looks or resends before the provider has had time to finish,
and then looks for the message by its own marker (notifiers/sms.py) before any resend. A look
that keeps failing holds the message back for `LOOK_PATIENCE` at most: then it goes again,
once, counted and logged as a possible second copy, since a due alert must go out. When to
retry and when to stop is notifiers/retry_rules.py, the marks of each outcome
notifiers/outcomes.py, the claims, the fence and the marks infra/notifications.py, the
notifiers' other SQL notifiers/db.py.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import NotificationRequested
from goldenhour.infra import notifications, tracing
from goldenhour.infra.backoff import delay
from goldenhour.infra.topics import Topics
from goldenhour.notifiers import db
from goldenhour.notifiers import retry_rules as rules
from goldenhour.notifiers.base import (
    Channel,
    LookFailed,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from goldenhour.notifiers.consumer import RequestConsumer
from goldenhour.notifiers.outcomes import PROCESSING_ALLOWANCE, Outcomes, attempted, timeout_of
from goldenhour.notifiers.status import apply_status, provider_status
from goldenhour.notifiers.subscription_health import WebhookSubscriptions
from goldenhour.notifiers.voice import CallbacksAwaited

log = structlog.get_logger(__name__)

SENT = Counter("goldenhour_notifications_sent_total", "Messages handed to a provider", ["channel"])
SWEEP_FAILURES = Counter("goldenhour_dispatcher_sweep_failures_total", "Sweeps that raised")
LAST_SWEEP = Gauge(
    "goldenhour_dispatcher_last_sweep_timestamp_seconds", "When the last sweep completed"
)
UNVERIFIED = Counter(
    "goldenhour_notifications_unverified_total",
    "Messages sent again although the provider could not say whether an earlier attempt"
    " reached it: each a possible second copy",
    ["channel"],
)
TASK_FAILURES = Counter(
    "goldenhour_dispatcher_task_failures_total", "Send or re-poll tasks that raised", ["channel"]
)

# One sweep's bound: a database that stopped answering must not hold the safety net.
SWEEP_BOUND_S = 30.0
# Each channel sends on slots of its own, SMS and voice the most: the golden hour is measured by
# them, and an email backlog (a server that accepts and never answers) can fill only its own.
SLOTS = {"sms": 32, "voice": 16, "email": 4, "webhook": 8}
OTHER_SLOTS = 4
POLL_SLOTS = 8
# At most this many messages of one channel wait for a slot here; the rest wait in the table.
QUEUE_DEPTH = 500
# Between the fence and the provider's answer, besides the channel's own timeout.
SEND_MARGIN_S = 2.0
# How long a stopping dispatcher lets its sends in flight finish: well inside the 60 s that
# Compose and Kubernetes give it, with room to close the connections after.
STOP_BOUND_S = 30.0


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
        concurrency: int | Mapping[str, int] | None = None,
        sweep_every_s: float = 0.5,
        processing_allowance: timedelta = PROCESSING_ALLOWANCE,
        look_patience: timedelta = rules.LOOK_PATIENCE,
    ) -> None:
        self.lease = lease
        self.look_patience = look_patience
        self.webhooks = webhooks
        self.pool = pool
        self.channels = channels
        self.public_url = public_url.rstrip("/")
        self.repoll_after = repoll_after
        self.sweep_every_s = sweep_every_s
        if isinstance(concurrency, int):  # one bound for every channel (tests)
            sizes = {name: min(concurrency, SLOTS.get(name, OTHER_SLOTS)) for name in channels}
        else:
            sizes = {**SLOTS, **(concurrency or {})}
        self._slots = {name: asyncio.Semaphore(sizes.get(name, OTHER_SLOTS)) for name in channels}
        self._polls = asyncio.Semaphore(POLL_SLOTS)
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False  # set at shutdown: no new send starts
        # Waiting for a slot or being sent here, by channel: never queued twice.
        self._queued: dict[uuid.UUID, str] = {}
        self._rng = random.Random()
        self.outcomes = Outcomes(pool, processing_allowance, self._rng)
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
                    # The database's clock, not this host's: leases are compared with it.
                    await self.sweep(await self.pool.fetchval(db.NOW))
            except Exception as exc:  # the safety net must never stop
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
        """Wait for the sends in flight and those waiting for a slot."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, bound_s: float = STOP_BOUND_S) -> None:
        """At shutdown: let the sends in flight finish for `bound_s` at most, start no more.
        A message still waiting for a slot was never claimed: a replica's sweep sends it. A
        send cut off at the bound leaves its row leased, and the replica that takes the lease
        over asks the provider before it sends again."""
        self._stopping = True
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=bound_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                log.warning("dispatcher.stop_cut_sends", sends=len(late), bound_s=bound_s)

    # --- one cycle ------------------------------------------------------------------

    async def send_requested(
        self, notification_id: uuid.UUID, due_by: datetime | None = None
    ) -> None:
        """Claim the message if it is pending and due (by `due_by`, else the database's now),
        and send it."""
        row = await notifications.claim_due(
            self.pool, notification_id, self.lease.total_seconds(), due_by
        )
        if row is not None:
            with tracing.bound(row["correlation_id"]):
                await self._deliver(row, reconcile=row["look_after"] is not None)

    async def take_over(
        self, notification_id: uuid.UUID, expired_by: datetime | None = None
    ) -> None:
        """Claim a message whose lease ran out (by `expired_by`, else the database's now) and
        reconcile before sending."""
        row = await notifications.claim_expired(
            self.pool, notification_id, self.lease.total_seconds(), expired_by
        )
        if row is not None:
            with tracing.bound(row["correlation_id"]):
                await self._deliver(row, reconcile=True)

    async def sweep(self, now: datetime) -> None:
        """One pass of the safety net at `now` (the database's): each channel's due and
        expired rows, then the re-polls."""
        for name in self.channels:
            queued = [n for n, ch in self._queued.items() if ch == name]
            room = QUEUE_DEPTH - len(queued)
            if room <= 0:
                continue
            for row in await self.pool.fetch(db.DUE, name, now, room, queued):
                self._queue(row["notification_id"], name, self.send_requested, now)
            for row in await self.pool.fetch(db.EXPIRED, name, now, room, queued):
                self._queue(row["notification_id"], name, self.take_over, now)
        stale = await notifications.touch_stale_sent(
            self.pool,
            now - self.repoll_after,
            [name for name, ch in self.channels.items() if ch.reports_delivery],
        )
        for row in stale:
            self._spawn(self._repoll(row), self._polls, row["channel"], row["notification_id"])

    def _queue(self, notification_id: uuid.UUID, channel: str, send, *args) -> None:
        """Send once a slot of the channel is free, unless this message already waits here or
        the dispatcher is stopping."""
        if self._stopping or notification_id in self._queued:
            return
        slots = self._slots.get(channel)
        if slots is None:
            log.error(
                "dispatcher.unknown_channel", notification_id=str(notification_id), channel=channel
            )
            return
        self._queued[notification_id] = channel
        task = self._spawn(send(notification_id, *args), slots, channel, notification_id)
        task.add_done_callback(lambda _: self._queued.pop(notification_id, None))

    def _spawn(
        self, coro, slots: asyncio.Semaphore, channel: str | None, notification_id: uuid.UUID
    ) -> asyncio.Task:
        task = asyncio.create_task(self._bounded(coro, slots, channel, notification_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _bounded(
        self, coro, slots: asyncio.Semaphore, channel: str | None, notification_id: uuid.UUID
    ) -> None:
        try:
            async with slots:
                if self._stopping:
                    return  # unclaimed yet: left to the sweep of a replica
                try:
                    async with asyncio.timeout(self._task_bound_s):
                        await coro
                except Exception as exc:  # one message's failure stops nothing
                    # The row stays leased; the sweep takes it up again when the lease expires,
                    # and reconciles with the provider before any resend.
                    TASK_FAILURES.labels(channel or "").inc()
                    log.warning(
                        "dispatcher.task_failed",
                        notification_id=str(notification_id),
                        channel=channel,
                        error=repr(exc)[:500],
                    )
        finally:
            coro.close()  # cancelled while it waited for a slot: it never started

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
            tried_for=row["db_now"] - (row["tried_at"] or row["created_at"]),
            signing_secret=secret,
        )

    async def _deliver(self, row: asyncpg.Record, reconcile: bool) -> None:
        channel = self.channels[row["channel"]]
        bound = log.bind(
            alert_id=str(row["alert_id"]) if row["alert_id"] else None,
            child_id=row["child_id"],
            notification_id=str(row["notification_id"]),
            channel=row["channel"],
            step_key=row["step_key"],
        )
        if row["attempts"] > 1:
            # A retry: the step may have stopped mattering since the last try.
            stopped = rules.stop(attempted(row), row["db_now"])
            if stopped is not None and not reconcile:
                await self.outcomes.stop(row, stopped, bound)
                return
        try:
            secret = None
            if row["channel"] == "webhook":
                secret = await self.webhooks.secret(row) if self.webhooks else None
                if secret is None:
                    await self.outcomes.fail(row, "the subscription is no longer active", bound)
                    return
            msg = self._message(row, secret)
            given_up: RetryableSendError | None = None
            if reconcile:
                # An earlier attempt may have reached the provider: ask before sending again.
                provider_id, given_up = await self._look(channel, msg, row)
                if provider_id is not None:
                    bound.info("notification.reconciled", provider_id=provider_id)
                    await self.outcomes.sent(row, provider_id, "sent", bound)
                    return
                if row["attempts"] > 1:
                    stopped = rules.stop(attempted(row), row["db_now"])
                    if stopped is not None:
                        await self.outcomes.stop(row, stopped, bound)
                        return
            send_bound_s = timeout_of(channel) + SEND_MARGIN_S
            if (
                await notifications.fence(
                    self.pool,
                    row["notification_id"],
                    row["claim"],
                    send_bound_s,
                    unverified=given_up is not None,
                )
                is None
            ):
                bound.warning("notification.lease_lost", claim=row["claim"], before="send")
                return
            if given_up is not None:
                UNVERIFIED.labels(row["channel"]).inc()
                bound.warning(
                    "notification.sent_unverified",
                    looks_failing_since=row["look_failed_at"].isoformat(),
                    attempts=row["attempts"],
                    error=str(given_up),
                )
            result = await channel.send(msg)
        except RetryableSendError as exc:
            await self._webhook_failed(row, str(exc))
            await self.outcomes.retry_or_stop(row, exc, channel, bound)
            return
        except PermanentSendError as exc:
            await self._webhook_failed(row, str(exc))
            await self.outcomes.fail(row, str(exc), bound, code=exc.code)
            return
        if row["channel"] == "webhook" and self.webhooks:
            await self.webhooks.succeeded(row)
        SENT.labels(row["channel"]).inc()
        if await self.outcomes.sent(row, result.provider_id, result.status, bound):
            bound.info("notification.sent", provider_id=result.provider_id)

    async def _look(
        self, channel: Channel, msg: OutboundMessage, row: asyncpg.Record
    ) -> tuple[str | None, RetryableSendError | None]:
        """The provider's id of the copy an earlier attempt left, if any; and, when the message
        is to go again unverified, the error of the look given up. A failed look raises
        LookFailed, unless the looks have failed for the patience and the message has not been
        sent unverified before: one possible second copy, never more."""
        try:
            found = await channel.find_sent(msg)
        except CallbacksAwaited:
            raise  # the provider answered: a call's own callbacks are due any moment
        except RetryableSendError as exc:
            if row["unverified_sends"] or not rules.look_abandoned(
                row["look_failed_at"], row["db_now"], self.look_patience
            ):
                raise LookFailed(exc) from exc
            return None, exc
        if row["look_failed_at"] is not None:
            # The provider answered: a failure before this says nothing of later looks.
            await notifications.look_answered(self.pool, row["notification_id"], row["claim"])
        return found, None

    async def _repoll(self, row: asyncpg.Record) -> None:
        """A message left in `sent` without a callback: ask the provider where it is."""
        status = await self.channels[row["channel"]].poll(row["provider_id"])
        ours = provider_status(status) if status else None
        if ours is not None and ours != "sent":
            await apply_status(self.pool, ours, None, notification_id=row["notification_id"])
