"""Fixtures the integration tests share: a pool on a freshly migrated database (on the session's
stack, or on a broker and database of the test's own), the local Twilio, SMTP server and webhook
receivers with the channels that talk to them, and a stand-in for our own Twilio webhook
endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.webhook_local import LocalWebhookReceiver
from goldenhour.infra.db import create_pool, migrate
from goldenhour.notifiers.sms import TwilioSms
from tests.integration.providers import ACCOUNT, FROM, TOKEN, TwilioEndpoints


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(migrated_db)
    yield p
    await p.close()


@pytest.fixture
def own_stack() -> Iterator[EmbeddedStack]:
    """A broker and database of this test's own, for the tests that stop, pause or restart them."""
    with EmbeddedStack(durable=False) as s:
        yield s


@pytest.fixture
async def own_db(own_stack: EmbeddedStack) -> str:
    """A freshly migrated database on `own_stack`."""
    dsn = own_stack.create_database(f"t_{uuid.uuid4().hex[:12]}")
    await migrate(dsn)
    return dsn


@pytest.fixture
async def own_pool(own_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `own_db`; closing it may hang or fail once the test has hurt the database."""
    p = await create_pool(own_db)
    yield p
    with contextlib.suppress(Exception):
        await asyncio.wait_for(p.close(), 10)


@pytest.fixture
async def twilio() -> AsyncIterator[LocalTwilio]:
    """The local Twilio-compatible server, for ACCOUNT and TOKEN."""
    server = LocalTwilio(ACCOUNT, TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sms(twilio: LocalTwilio) -> AsyncIterator[TwilioSms]:
    """The SMS channel, sending from FROM through the local Twilio."""
    channel = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url)
    yield channel
    await channel.close()


@pytest.fixture
async def smtp() -> AsyncIterator[LocalSmtp]:
    """The local SMTP server (started and stopped off the loop: it runs a thread of its own)."""
    server = LocalSmtp()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def start_webhook_receiver() -> AsyncIterator[Callable[..., Awaitable[LocalWebhookReceiver]]]:
    """Starts a local webhook receiver verifying with `secret` (and made with any other
    LocalWebhookReceiver arguments); every one started is stopped at the end."""
    started: list[LocalWebhookReceiver] = []

    async def start(secret: str | None = None, **kwargs: Any) -> LocalWebhookReceiver:
        server = LocalWebhookReceiver(**kwargs)
        server.set_secret(secret)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def webhook_receiver(
    start_webhook_receiver: Callable[..., Awaitable[LocalWebhookReceiver]],
) -> LocalWebhookReceiver:
    """The local webhook receiver; a test sets the secret it verifies with."""
    return await start_webhook_receiver()


@pytest.fixture
async def twilio_endpoints() -> AsyncIterator[TwilioEndpoints]:
    """Our Twilio webhook endpoints stood in for; a test may set what they answer."""
    server = TwilioEndpoints()
    await server.start()
    yield server
    await server.stop()
