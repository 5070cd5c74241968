"""Channels never starve one another: with an SMTP server that accepts and never answers and 300
emails due, an SMS whose Kafka event was lost is still sent within a second or so. Real
PostgreSQL, the real twilio library on the local Twilio, a real socket for the black hole."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.email import SmtpEmail
from goldenhour.notifiers.sms import TwilioSms
from tests.integration.providers import ACCOUNT, FROM, PHONE, PUBLIC_URL, TOKEN
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row

EMAILS = 300


class BlackHole:
    """A TCP server that accepts every connection and never says a word (an SMTP server wedged
    after accept), holding each socket open until it is stopped."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.read()  # until the client gives up and closes

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole()
    await hole.start()
    yield hole
    await hole.stop()


async def test_an_email_backlog_never_delays_an_sms(pool, twilio, black_hole) -> None:
    alert_id = await open_alert(pool, CHILD)
    # Older than the SMS, so a sweep of the oldest due rows across channels would see only them.
    await pool.execute(
        "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
        " org_code, channel, address, subject, body, status, next_attempt_at, created_at)"
        " SELECT gen_random_uuid(), $1, 'LBH-2026-0042', 's0', 'e' || i, 'LBH', 'email',"
        " 'e' || i || '@lbh.example', 'Missing child', 'body', 'pending',"
        " now() - interval '1 minute', now() - interval '1 minute'"
        " FROM generate_series(1, $2) AS i",
        alert_id,
        EMAILS,
    )
    channels = {
        "sms": TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url),
        "email": SmtpEmail(
            "127.0.0.1", black_hole.port, "alerts@goldenhour.test", tls="off", timeout=30
        ),
    }
    dispatcher = Dispatcher(pool, channels, PUBLIC_URL, repoll_after=timedelta(minutes=5))
    sweeping = asyncio.create_task(dispatcher.sweep_forever())
    try:
        # The email slots are all taken by sends the black hole never answers.
        await eventually(lambda: black_hole.accepted >= 4, 20, "the email backlog to build up")
        await asyncio.sleep(1.0)  # a few sweeps over the backlog
        # No Kafka event: only the sweep can find it.
        inserted = time.monotonic()
        nid = await add_row(pool, alert_id, contact="mps-cr")

        def since_inserted(seconds: float) -> float:
            return inserted + seconds - time.monotonic()

        await eventually(
            lambda: twilio.messages_to(PHONE),
            since_inserted(5),
            "the SMS to go out past the email backlog",
            every=0.02,
        )
        latency = time.monotonic() - inserted

        async def marked() -> asyncpg.Record:
            r = await row(pool, nid)
            assert r["status"] != "sending", "still sending"
            return r

        sms_row = await eventually(marked, since_inserted(10), "the SMS to be marked", every=0.02)
        assert (sms_row["status"], sms_row["attempts"]) == ("sent", 1)
        assert len(twilio.messages_to(PHONE)) == 1
        # Still wedged: nothing here was waiting for the backlog to clear.
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM notifications WHERE channel = 'email' AND status = 'sent'"
            )
            == 0
        )
        print(f"SMS latency with {EMAILS} emails wedged: {latency * 1000:.0f} ms")
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
        for task in list(dispatcher._tasks):
            task.cancel()
        await asyncio.gather(*dispatcher._tasks, return_exceptions=True)
        for channel in channels.values():
            await channel.close()
