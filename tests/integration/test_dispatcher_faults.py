"""The dispatcher under faults: a paused or restarted broker, poison on its topic, a channel that
raises what nobody expected, a database outage. Real Tansu, PostgreSQL and the local Twilio."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import NotificationRequested, NotificationSent
from goldenhour.dev.london import directory
from goldenhour.dev.servers import free_port
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import DbLimits, create_pool, migrate
from goldenhour.infra.health import HealthServer
from goldenhour.infra.topics import Topics, ensure_topics
from goldenhour.notifiers.app import health_checks
from goldenhour.notifiers.base import Channel, OutboundMessage, SendResult
from goldenhour.notifiers.consumer import Poison, read_request
from goldenhour.notifiers.dispatcher import SWEEP_FAILURES, Dispatcher
from goldenhour.notifiers.sms import TwilioSms
from tests.integration.providers import PUBLIC_URL
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row

OPS_EMAIL = "oncall@platform.example"


def config() -> GoldenHourConfig:
    raw, _ = directory(scale=1.0)
    raw["operations"] = [{"id": "ops1", "phone": "+447700900777", "email": OPS_EMAIL}]
    return GoldenHourConfig.model_validate(raw)


def request_for(nid: uuid.UUID, alert_id: uuid.UUID, contact: str) -> bytes:
    return (
        NotificationRequested(
            occurred_at=datetime.now(UTC),
            child_id=CHILD,
            notification_id=nid,
            alert_id=alert_id,
            channel="sms",
            contact_id=contact,
            step_key="s0",
        )
        .model_dump_json()
        .encode()
    )


async def publish(bootstrap: str, topic: str, *values: bytes) -> None:
    """Publish with a producer of its own, acknowledged by the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=CHILD.encode())
    finally:
        await producer.stop()


class Running:
    """Background loops of a test, cancelled and awaited at the end whatever happened."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task] = []

    def start(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.append(task)
        return task

    def consume(
        self, dispatcher: Dispatcher, bootstrap: str, topic: str, group: str, **kwargs: Any
    ) -> asyncio.Task:
        """The dispatcher's consume loop on `topic`, in a group of its own."""
        loop = dispatcher.consume(
            bootstrap,
            topic,
            group,
            session_timeout_s=2.0,
            config=config(),
            **kwargs,
        )
        return self.start(loop, "consume")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    loops = Running()
    yield loops
    await loops.stop()


def sms_for(twilio: LocalTwilio, nid: uuid.UUID) -> list:
    """SMS the provider received for one notification row (told by its status callback)."""
    return [
        m for m in twilio.messages if m.status_callback and m.status_callback.endswith(str(nid))
    ]


async def until_sent(twilio: LocalTwilio, nid: uuid.UUID, timeout: float, what: str) -> None:
    """Wait until the provider has the SMS of row `nid`."""
    await eventually(lambda: sms_for(twilio, nid), timeout, what)


# --- reading the topic: pure --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", "parse"),
        (b"[1, 2]", "parse"),
        (b"", "parse"),
        (b"[" * 100_000 + b"]" * 100_000, "parse"),  # json.loads raises RecursionError
        (b'{"type": "notification.requested", "schema_version": 2}', "schema"),
        (
            b'{"type": "notification.requested", "schema_version": 1, "child_id": "X1"}',
            "validation",
        ),
        (b'{"type": "nonsense", "schema_version": 1}', "validation"),
    ],
)
def test_poison_is_told_apart(raw: bytes, reason: str) -> None:
    outcome = read_request(raw)
    assert isinstance(outcome, Poison) and outcome.reason == reason and outcome.error


def test_other_notification_events_are_ignored_and_requests_read() -> None:
    aid, nid = uuid.uuid4(), uuid.uuid4()
    sent = NotificationSent(
        occurred_at=datetime.now(UTC),
        child_id=CHILD,
        notification_id=nid,
        alert_id=aid,
        channel="sms",
        contact_id="c1",
        step_key="s0",
        provider_id="SM1",
    )
    assert read_request(sent.model_dump_json().encode()) is None
    request = read_request(request_for(nid, aid, "c1"))
    assert isinstance(request, NotificationRequested) and request.notification_id == nid


# --- the consume loop across broker faults ------------------------------------------------


async def test_consume_survives_broker_pause_and_restart(twilio, sms, running) -> None:
    """Only the consume loop runs (no sweep): each message sent proves the fast path works."""
    with EmbeddedStack(durable=False) as stack:
        dsn = stack.create_database("dispatch_faults")
        await migrate(dsn)
        pool = await create_pool(dsn)
        try:
            topics = Topics(f"df-{uuid.uuid4().hex[:8]}")
            await ensure_topics(stack.kafka_bootstrap, topics)
            dispatcher = Dispatcher(
                pool, {"sms": sms}, PUBLIC_URL, repoll_after=timedelta(minutes=5)
            )
            consume = running.consume(
                dispatcher,
                stack.kafka_bootstrap,
                topics.notifications,
                "df-dispatcher",
                topics=topics,
            )
            aid = await open_alert(pool, CHILD)
            first = await add_row(pool, aid, contact="c1")
            await publish(
                stack.kafka_bootstrap, topics.notifications, request_for(first, aid, "c1")
            )
            await until_sent(twilio, first, 30, "the first request before any fault")
            assert dispatcher.requests is not None
            before = dispatcher.requests.cluster_id

            paused_at = asyncio.get_running_loop().time()
            stack.signal("tansu", signal.SIGSTOP)
            try:

                async def broker_reported() -> bool:
                    return dispatcher.requests.broker_problem() is not None

                await eventually(broker_reported, 14, "the paused broker to show in health")
                # The fault lasts 15 s, longer than the group's session and every request timeout.
                await asyncio.sleep(max(0.0, paused_at + 15 - asyncio.get_running_loop().time()))
            finally:
                stack.signal("tansu", signal.SIGCONT)
            assert not consume.done()
            second = await add_row(pool, aid, contact="c2")
            await publish(
                stack.kafka_bootstrap, topics.notifications, request_for(second, aid, "c2")
            )
            await until_sent(twilio, second, 30, "a request after the broker's pause")

            await asyncio.to_thread(stack.restart_kafka)  # its log and our group are gone

            async def consuming_again() -> bool:
                r = dispatcher.requests
                return r.cluster_id != before and r.assigned and r.broker_problem() is None

            await eventually(consuming_again, 60, "a consumer on the new broker")
            third = await add_row(pool, aid, contact="c3")
            await publish(
                stack.kafka_bootstrap, topics.notifications, request_for(third, aid, "c3")
            )
            await until_sent(twilio, third, 30, "a request after the broker's restart")
            assert not consume.done()
            assert [len(sms_for(twilio, n)) for n in (first, second, third)] == [1, 1, 1]
            assert {(await row(pool, n))["status"] for n in (first, second, third)} <= {
                "sent",
                "delivered",
            }
        finally:
            await running.stop()
            await pool.close()


# --- poison on the topic ------------------------------------------------------------------


async def test_poison_is_dead_lettered_and_the_next_request_sent(
    stack, migrated_db, twilio, sms, running
) -> None:
    pool = await create_pool(migrated_db)
    try:
        topics = Topics(f"dp-{uuid.uuid4().hex[:8]}")
        await ensure_topics(stack.kafka_bootstrap, topics)
        dispatcher = Dispatcher(pool, {"sms": sms}, PUBLIC_URL, repoll_after=timedelta(minutes=5))
        consume = running.consume(
            dispatcher, stack.kafka_bootstrap, topics.notifications, "dp-dispatcher"
        )
        aid = await open_alert(pool, CHILD)
        nid = await add_row(pool, aid, contact="c1")
        bad_event = uuid.uuid4()
        not_json = b"\x00\x01 definitely not json"
        invalid = (
            b'{"type": "notification.requested", "schema_version": 1, "event_id": "'
            + str(bad_event).encode()
            + b'", "child_id": "LBH-2026-0042", "channel": "pigeon"}'
        )
        other = NotificationSent(
            occurred_at=datetime.now(UTC),
            child_id=CHILD,
            notification_id=uuid.uuid4(),
            alert_id=aid,
            channel="sms",
            contact_id="c9",
            step_key="s0",
            provider_id="SM1",
        )
        # One batch: the poison, an event that is not ours, then the request that must go.
        await publish(
            stack.kafka_bootstrap,
            topics.notifications,
            not_json,
            invalid,
            other.model_dump_json().encode(),
            request_for(nid, aid, "c1"),
        )
        await until_sent(twilio, nid, 30, "the valid request after the poison")
        letters = await pool.fetch(
            "SELECT * FROM dead_letters WHERE consumer = 'dispatcher' ORDER BY kafka_offset"
        )
        assert [(bytes(d["raw"]), d["reason"]) for d in letters] == [
            (not_json, "parse"),
            (invalid, "validation"),
        ]
        assert all(d["topic"] == topics.notifications for d in letters)
        assert all(
            d["kafka_partition"] is not None and d["kafka_offset"] is not None for d in letters
        )
        assert (letters[1]["event_id"], letters[1]["child_id"]) == (bad_event, CHILD)
        told = await pool.fetch(
            "SELECT address, step_key FROM notifications WHERE alert_id IS NULL ORDER BY step_key"
        )
        assert [(t["address"], t["step_key"]) for t in told] == sorted(
            (OPS_EMAIL, f"operations:dead_letter:{d['id']}") for d in letters
        )
        audited = await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'event.dead_lettered'"
        )
        assert audited == 2
        assert not consume.done()
        assert len(sms_for(twilio, nid)) == 1

        # While it holds its partitions the dispatcher beats; stopped, it is no longer ready.
        beat = "SELECT beat_at FROM worker_readiness WHERE part = 'dispatcher'"

        async def marked() -> bool:
            return await pool.fetchval(beat) is not None

        await eventually(marked, 15, "the readiness row")
        first = await pool.fetchval(beat)

        async def beat_again() -> bool:
            return await pool.fetchval(beat) > first

        await eventually(beat_again, 15, "the beat to move on")
        await running.stop()
        assert await pool.fetchval("SELECT count(*) FROM worker_readiness") == 0
    finally:
        await running.stop()
        await pool.close()


# --- the sweep survives any exception -----------------------------------------------------


BAD = "+447700900666"


class Unruly(Channel):
    """Our channel interface around the real SMS channel: it raises ValueError for one number,
    and its `reports_delivery` raises the first few times the sweep asks."""

    name = "sms"

    def __init__(self, inner: TwilioSms, sweep_failures: int) -> None:
        self.inner = inner
        self.left = sweep_failures
        self.asked_bad = 0

    @property
    def reports_delivery(self) -> bool:  # type: ignore[override]
        if self.left > 0:
            self.left -= 1
            raise ValueError("a bug nobody saw coming")
        return True

    def _refuse_bad(self, msg: OutboundMessage) -> None:
        if msg.to == BAD:
            self.asked_bad += 1
            raise ValueError("cannot encode this number")

    async def send(self, msg: OutboundMessage) -> SendResult:
        self._refuse_bad(msg)
        return await self.inner.send(msg)

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        self._refuse_bad(msg)
        return await self.inner.find_sent(msg)

    async def poll(self, provider_id: str) -> str | None:
        return await self.inner.poll(provider_id)

    async def close(self) -> None:
        return None


async def test_sweep_survives_exceptions_it_never_expected(
    migrated_db, twilio, sms, running
) -> None:
    pool = await create_pool(migrated_db)
    try:
        channel = Unruly(sms, sweep_failures=3)
        dispatcher = Dispatcher(
            pool,
            {"sms": channel},
            PUBLIC_URL,
            repoll_after=timedelta(minutes=5),
            lease=timedelta(seconds=0.5),
            sweep_every_s=0.1,
        )
        failures_before = SWEEP_FAILURES._value.get()
        aid = await open_alert(pool, CHILD)
        bad = await add_row(pool, aid, contact="bad", address=BAD)
        good = [await add_row(pool, aid, contact=f"c{i}") for i in range(3)]
        sweeping = running.start(dispatcher.sweep_forever(), "sweep")

        async def all_sent() -> bool:
            return all(sms_for(twilio, n) for n in good)

        await eventually(all_sent, 30, "the other rows to be sent")
        # The bad row's lease runs out and it is taken over (find_sent) again and again.
        await eventually(lambda: channel.asked_bad >= 3, 30, "the bad row to be retried")
        later = await add_row(pool, aid, contact="later")
        await until_sent(twilio, later, 30, "a row added after the failures")
        assert not sweeping.done()
        assert SWEEP_FAILURES._value.get() - failures_before >= 3
        assert dispatcher.sweep_problem() is None
        assert (await row(pool, bad))["status"] == "sending"  # leased, never marked sent
        assert [len(sms_for(twilio, n)) for n in [*good, later]] == [1, 1, 1, 1]
    finally:
        await running.stop()
        await dispatcher.drain()
        await pool.close()


# --- honest health across a database outage -----------------------------------------------


async def test_readyz_says_503_while_postgres_is_down(twilio, sms, running) -> None:
    with EmbeddedStack(durable=False) as stack:
        dsn = stack.create_database("dispatch_health")
        await migrate(dsn)
        limits = DbLimits(connect_timeout_s=1.0, command_timeout_s=2.0)
        pool = await create_pool(dsn, limits=limits)
        health = None
        try:
            topics = Topics(f"dh-{uuid.uuid4().hex[:8]}")
            await ensure_topics(stack.kafka_bootstrap, topics)
            dispatcher = Dispatcher(
                pool, {"sms": sms}, PUBLIC_URL, repoll_after=timedelta(minutes=5), sweep_every_s=0.2
            )
            running.consume(
                dispatcher, stack.kafka_bootstrap, topics.notifications, "dh-dispatcher"
            )
            sweeping = running.start(dispatcher.sweep_forever(), "sweep")
            port = free_port()
            token = "metrics-token-of-the-sweep-test"
            health = HealthServer(port, health_checks(pool, dispatcher), metrics_tokens=[token])
            await health.start()
            url = f"http://127.0.0.1:{port}"
            answers: list[httpx.Response] = []

            async def readyz(status: int) -> bool:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    answers.append(await client.get(f"{url}/readyz"))
                return answers[-1].status_code == status

            await eventually(lambda: readyz(200), 30, "ready before the outage", every=0.2)
            assert answers[-1].json() == {"status": "ready"}

            await asyncio.to_thread(stack.stop_postgres)
            try:
                await eventually(lambda: readyz(503), 30, "503 while postgres is down", every=0.2)
                body = answers[-1].json()
                assert body["status"] == "unavailable" and body["database"]
                # ... and it stays 503 for as long as the database is gone.
                await eventually(
                    lambda: _and_sweep_reported(readyz, answers), 30, "the stuck sweep reported"
                )
            finally:
                await asyncio.to_thread(stack.start_postgres)
            await eventually(lambda: readyz(200), 60, "ready after the outage", every=0.2)
            assert not sweeping.done()

            aid = await open_alert(pool, CHILD)
            nid = await add_row(pool, aid, contact="after")
            await until_sent(twilio, nid, 30, "a message after the outage")
            async with httpx.AsyncClient(timeout=5.0) as client:
                bearer = {"Authorization": f"Bearer {token}"}
                metrics = (await client.get(f"{url}/metrics", headers=bearer)).text
            assert "goldenhour_dispatcher_sweep_failures_total" in metrics
            assert "goldenhour_dispatcher_last_sweep_timestamp_seconds" in metrics
        finally:
            await running.stop()
            if health is not None:
                await health.stop()
            await pool.close()


async def _and_sweep_reported(
    readyz: Callable[[int], Awaitable[bool]], answers: list[httpx.Response]
) -> bool:
    return await readyz(503) and "sweep" in answers[-1].json()
