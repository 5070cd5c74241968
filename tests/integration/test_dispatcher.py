"""Dispatcher against real Postgres, the real twilio library on LocalTwilio, and real SMTP."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.infra.db import create_pool
from goldenhour.notifiers.base import Channel, OutboundMessage
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.email import SmtpEmail, message_id_for
from goldenhour.notifiers.retry_rules import BACKOFF_CAP_S, backoff
from goldenhour.notifiers.sms import TwilioSms, with_ref
from tests.integration.providers import ACCOUNT, FROM, PHONE, PUBLIC_URL, TOKEN
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row

EMAIL = "duty.manager@lbh.example"


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
async def channels(twilio: LocalTwilio, smtp: LocalSmtp) -> AsyncIterator[dict[str, Channel]]:
    chans: dict[str, Channel] = {
        "sms": TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url),
        "email": SmtpEmail(smtp.host, smtp.port, "alerts@goldenhour.test", tls="off"),
    }
    yield chans
    for chan in chans.values():
        await chan.close()


def make_dispatcher(pool: asyncpg.Pool, channels: dict[str, Channel], **kw) -> Dispatcher:
    kw.setdefault("repoll_after", timedelta(minutes=5))
    return Dispatcher(pool, channels, PUBLIC_URL, **kw)


@pytest.fixture
async def dispatcher(pool, channels) -> AsyncIterator[Dispatcher]:
    d = make_dispatcher(pool, channels)
    yield d
    await d.drain()


@pytest.fixture
async def alert_id(pool: asyncpg.Pool) -> uuid.UUID:
    return await open_alert(pool, CHILD)


# --- helpers ------------------------------------------------------------------------------


async def sweep(d: Dispatcher, ahead_s: float = 0.0) -> None:
    """One sweep as if the clock read now + ahead_s, then wait for what it started."""
    await d.sweep(datetime.now(UTC) + timedelta(seconds=ahead_s))
    await d.drain()


def outbound_for(r: asyncpg.Record) -> OutboundMessage:
    """The message a dispatcher that died mid-send would have handed to the provider."""
    return OutboundMessage(str(r["notification_id"]), "k", r["address"], "", r["body"])


# --- 1, 2: the fast path ------------------------------------------------------------------


async def test_send_requested_sends_sms_once(dispatcher, pool, twilio, alert_id) -> None:
    nid = await add_row(pool, alert_id)
    await asyncio.gather(dispatcher.send_requested(nid), dispatcher.send_requested(nid))
    await dispatcher.send_requested(nid)
    await dispatcher.drain()

    [sms] = twilio.messages_to(PHONE)
    r = await row(pool, nid)
    assert (r["status"], r["provider_id"], r["attempts"]) == ("sent", sms.sid, 1)
    assert r["lease_until"] is None and r["sent_at"] is not None
    assert sms.status_callback is not None and sms.status_callback.startswith(PUBLIC_URL + "/")
    assert parse_qs(urlsplit(sms.status_callback).query) == {"n": [str(nid)]}
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'notification.sent'"
    )
    assert audited == 1


async def test_email_sent_with_idempotent_message_id(dispatcher, pool, smtp, alert_id) -> None:
    nid = await add_row(pool, alert_id, channel="email", address=EMAIL, contact="dm")
    await dispatcher.send_requested(nid)

    [mail] = smtp.messages
    expected = message_id_for(f"{alert_id}:s0:dm:email")
    r = await row(pool, nid)
    assert (r["status"], r["provider_id"]) == ("sent", expected)
    assert r["sent_at"] is not None and r["delivered_at"] is None  # SMTP never says delivered
    assert mail.message_id == expected and mail.rcpt_tos == [EMAIL]


# --- 3, 4: retryable and permanent failures -----------------------------------------------


@pytest.mark.parametrize(
    ("inject", "min_wait"),
    [
        pytest.param(lambda t: t.fail_next(1, 429, retry_after=30), 29.0, id="429-retry-after"),
        pytest.param(lambda t: t.fail_next(1, 503), 0.0, id="503"),
        # A dropped connection may have carried the request: nobody looks or resends before
        # the provider had its timeout (10 s) and its processing time (40 s).
        pytest.param(lambda t: t.drop_connection_next(1, accept=False), 49.0, id="drop-unsent"),
        # The nasty one: Twilio took the SMS, the answer was lost; the retry must not resend.
        pytest.param(lambda t: t.drop_connection_next(1, accept=True), 49.0, id="drop-accepted"),
    ],
)
async def test_retryable_error_then_success(
    dispatcher, pool, twilio, alert_id, inject, min_wait
) -> None:
    inject(twilio)
    nid = await add_row(pool, alert_id)
    await dispatcher.send_requested(nid)

    r = await row(pool, nid)
    assert (r["status"], r["attempts"], r["lease_until"]) == ("pending", 1, None)
    assert r["last_error"]
    # The wait the mark decided: both stamps are the database's now() of that one statement.
    wait = (r["next_attempt_at"] - r["updated_at"]).total_seconds()
    assert min_wait < wait <= max(min_wait + 2, 1)  # Retry-After honoured, else short backoff

    # A sweep as of just before it falls due: nothing new at the provider.
    await dispatcher.sweep(r["next_attempt_at"] - timedelta(milliseconds=1))
    await dispatcher.drain()
    assert (await row(pool, nid))["status"] == "pending"
    await sweep(dispatcher, ahead_s=wait + 1)

    [sms] = twilio.messages_to(PHONE)
    r = await row(pool, nid)
    assert (r["status"], r["provider_id"]) == ("sent", sms.sid)
    assert r["attempts"] == 2


async def test_permanent_error_fails_without_retry(dispatcher, pool, twilio, alert_id) -> None:
    nid = await add_row(pool, alert_id, address="+4412")
    await dispatcher.send_requested(nid)
    await sweep(dispatcher, ahead_s=3600)

    r = await row(pool, nid)
    assert (r["status"], r["attempts"]) == ("failed", 1)
    assert "21211" in r["last_error"]
    assert twilio.messages == []
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'notification.failed'"
    )


async def test_a_backlog_waits_unleased_and_each_message_is_queued_once(
    pool, channels, twilio, alert_id
) -> None:
    """Behind a backlog a message is not leased until a slot is free to send it, so no lease
    runs out while it waits (which would hand it to a second sender), and repeated sweeps do
    not queue it twice."""
    d = make_dispatcher(pool, channels, concurrency=1)
    nids = [await add_row(pool, alert_id, contact=f"c{i}") for i in range(3)]
    async with d._slots["sms"]:  # the one slot is busy
        for _ in range(3):
            await d.sweep(datetime.now(UTC))
            await asyncio.sleep(0.05)
        assert len(d._tasks) == 3
        waiting = [await row(pool, n) for n in nids]
        assert {(r["status"], r["attempts"], r["lease_until"]) for r in waiting} == {
            ("pending", 0, None)
        }
    await d.drain()
    assert sorted(m.body for m in twilio.messages_to(PHONE)) == sorted(
        with_ref(f"ALERT LBH-2026-0042 missing. Ack 1234 (c{i})", str(n))
        for i, n in enumerate(nids)
    )
    assert {(await row(pool, n))["status"] for n in nids} == {"sent"}


# --- 5: crash recovery --------------------------------------------------------------------


async def test_expired_lease_reconciles_with_provider(
    dispatcher, pool, twilio, channels, alert_id
) -> None:
    nid = await add_row(pool, alert_id)
    # The dead dispatcher claimed the row and Twilio accepted its message; then it died.
    sid = (await channels["sms"].send(outbound_for(await row(pool, nid)))).provider_id
    await pool.execute(
        "UPDATE notifications SET status = 'sending', attempts = 1,"
        " lease_until = now() - interval '1 second' WHERE notification_id = $1",
        nid,
    )
    await sweep(dispatcher)
    await sweep(dispatcher)

    assert [m.sid for m in twilio.messages_to(PHONE)] == [sid]
    r = await row(pool, nid)
    assert (r["status"], r["provider_id"], r["lease_until"]) == ("sent", sid, None)


async def test_expired_lease_with_nothing_sent_sends_once(
    dispatcher, pool, twilio, alert_id
) -> None:
    nid = await add_row(pool, alert_id, status="sending", lease_s=-1)
    live = await add_row(pool, alert_id, contact="c2", status="sending", lease_s=60)
    await sweep(dispatcher)
    await sweep(dispatcher)

    [sms] = twilio.messages
    r = await row(pool, nid)
    assert (r["status"], r["provider_id"], sms.body) == (
        "sent",
        sms.sid,
        with_ref(r["body"], str(nid)),
    )
    assert (await row(pool, live))["status"] == "sending"  # a live lease is left alone


# --- 6: re-poll of a message stuck in `sent` ----------------------------------------------


async def test_sent_without_callback_is_repolled(pool, channels, twilio, alert_id) -> None:
    twilio.set_callbacks(False)
    d = make_dispatcher(pool, channels, repoll_after=timedelta(seconds=0.2))
    nid = await add_row(pool, alert_id)
    await d.send_requested(nid)
    await twilio.wait_for(lambda m: m.status == "delivered")

    marked_at = (await row(pool, nid))["updated_at"]
    await d.sweep(marked_at)  # too soon to re-poll
    await d.drain()
    assert (await row(pool, nid))["status"] == "sent"
    await d.sweep(marked_at + timedelta(seconds=0.3))
    await d.drain()

    r = await row(pool, nid)
    assert r["status"] == "delivered" and r["delivered_at"] is not None
    assert len(twilio.messages) == 1


# --- 7: two dispatchers racing ------------------------------------------------------------


async def test_two_dispatchers_send_each_row_once(migrated_db, channels, twilio, alert_id) -> None:
    pools = [await create_pool(migrated_db) for _ in range(2)]
    try:
        seed = pools[0]
        ids = [await add_row(seed, alert_id, contact=f"c{i:02d}") for i in range(50)]
        a, b = (make_dispatcher(p, channels, concurrency=8) for p in pools)
        # A third transaction holds one row: sweeps must skip it, not queue up behind it and
        # then claim rows the other sweep already took.
        blocker = await asyncpg.connect(migrated_db)
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "SELECT 1 FROM notifications WHERE notification_id = $1 FOR UPDATE", ids[1]
        )
        now = datetime.now(UTC)
        race = asyncio.gather(
            *(d.sweep(now) for _ in range(4) for d in (a, b)),
            *(d.send_requested(n) for n in ids[::5] for d in (a, b)),
        )
        await asyncio.sleep(0.3)
        held = "SELECT status FROM notifications WHERE notification_id = $1"
        assert await blocker.fetchval(held, ids[1]) == "pending"
        await tx.rollback()
        await blocker.close()
        await race
        await asyncio.gather(a.drain(), b.drain())
        await asyncio.gather(sweep(a), sweep(b))

        bodies = Counter(m.body for m in twilio.messages)
        assert len(bodies) == 50 and set(bodies.values()) == {1}
        states = await seed.fetch("SELECT status, attempts FROM notifications")
        assert {(s["status"], s["attempts"]) for s in states} == {("sent", 1)}
    finally:
        for p in pools:
            await p.close()


# --- 8: backoff ---------------------------------------------------------------------------


@given(st.integers(1, 40), st.one_of(st.none(), st.floats(0, 600)), st.integers(0, 2**32))
def test_backoff_bounds(attempts: int, retry_after: float | None, seed: int) -> None:
    delay = backoff(attempts, retry_after, random.Random(seed))
    ceiling = min(BACKOFF_CAP_S, 0.5 * 2 ** (attempts - 1))
    # Retry-After is honoured up to the cap: a provider asking for an hour cannot stall an alert.
    honoured = min(retry_after or 0.0, BACKOFF_CAP_S)
    assert delay >= honoured
    assert delay >= ceiling / 2 > 0
    assert delay <= max(ceiling, honoured) <= BACKOFF_CAP_S


def test_backoff_grows_then_caps() -> None:
    def typical(n: int) -> float:
        rng = random.Random(7)
        return sum(backoff(n, None, rng) for _ in range(200)) / 200

    means = [typical(n) for n in range(1, 12)]
    assert all(later > earlier for earlier, later in zip(means[:6], means[1:7], strict=True))
    assert max(means) <= BACKOFF_CAP_S and means[-1] == pytest.approx(means[-2], rel=0.2)
    assert backoff(1, 45.0, random.Random(0)) == 45.0
