"""The reconcile cannot double-send: after an outcome that may have reached Twilio the dispatcher
waits for Twilio to finish before it looks, looks by the message's own marker, and a failing
list call is an attempt like a failed send. Real PostgreSQL, the real twilio library on the
local Twilio-compatible server."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.base import OutboundMessage
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.sms import TwilioSms, ref_of
from tests.integration.providers import ACCOUNT, FROM, PHONE, PUBLIC_URL, TOKEN
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row


@contextlib.asynccontextmanager
async def sweeping(dispatcher: Dispatcher) -> AsyncIterator[None]:
    task = asyncio.create_task(dispatcher.sweep_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dispatcher.drain()


def sweeper(pool: asyncpg.Pool, sms: TwilioSms, allowance_s: float, **options: Any) -> Dispatcher:
    """A dispatcher for SMS alone that sweeps every 0.2 s, allowing Twilio `allowance_s` to
    finish an ambiguous send before it looks (`options`: the Dispatcher's others)."""
    return Dispatcher(
        pool,
        {"sms": sms},
        PUBLIC_URL,
        repoll_after=timedelta(minutes=5),
        processing_allowance=timedelta(seconds=allowance_s),
        sweep_every_s=0.2,
        **options,
    )


async def settled(pool: asyncpg.Pool, nid: uuid.UUID, timeout: float) -> asyncpg.Record:
    async def done() -> asyncpg.Record:
        r = await row(pool, nid)
        assert r["status"] in ("sent", "delivered", "failed"), f"still {r['status']}: {dict(r)}"
        return r

    return await eventually(done, timeout, "the message to settle", every=0.1)


async def test_a_create_slower_than_the_timeout_sends_one_sms(pool, twilio) -> None:
    """Creates take 12 s, past the client's 10 s timeout, and Twilio's list shows a message only
    13 s after it was created: a look 0.5 s after the timeout (as before) found nothing and
    sent a second copy."""
    twilio.set_create_delay(12)
    twilio.set_list_lag(13)
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url)  # 10 s timeout
    dispatcher = sweeper(pool, sms, allowance_s=5)
    nid = await add_row(pool, await open_alert(pool, CHILD))

    async def looked_after() -> asyncpg.Record:
        r = await row(pool, nid)
        assert r["look_after"] is not None, f"no look yet: {dict(r)}"
        return r

    try:
        async with sweeping(dispatcher):
            after_timeout = await eventually(looked_after, 60, "the create to time out", every=0.1)
            waited = (after_timeout["look_after"] - after_timeout["updated_at"]).total_seconds()
            assert waited == pytest.approx(15, abs=0.5)  # the timeout and the allowance
            assert after_timeout["next_attempt_at"] >= after_timeout["look_after"]
            done = await settled(pool, nid, 60)
    finally:
        await sms.close()
    [sent] = twilio.messages_to(PHONE)
    assert (done["status"], done["provider_id"]) == ("sent", sent.sid)
    assert done["attempts"] == 2
    assert sent.body.endswith(f" Ref {ref_of(str(nid))}")


async def test_a_failing_list_call_is_counted_and_retried_without_a_lease_stall(
    pool, twilio
) -> None:
    """The reconcile's list call fails for a while: each failure is an attempt, backed off, and
    the row never sits in `sending` for a lease; once the list answers, one SMS in all."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=2)
    dispatcher = sweeper(pool, sms, allowance_s=1)
    twilio.drop_connection_next(1, accept=True)  # taken, the answer lost: a look is needed
    twilio.outage(500, 9, ops=["list"])
    outage_ends = time.monotonic() + 9
    nid = await add_row(pool, await open_alert(pool, CHILD))
    sending_since: float | None = None
    longest_sending = 0.0

    async def outage_watched() -> bool:
        """Whether the outage is over; till then, how long the row sits in `sending`."""
        nonlocal sending_since, longest_sending
        if time.monotonic() >= outage_ends:
            return True
        r = await row(pool, nid)
        if r["status"] == "sending":
            sending_since = sending_since or time.monotonic()
            longest_sending = max(longest_sending, time.monotonic() - sending_since)
        else:
            sending_since = None
        return False

    try:
        async with sweeping(dispatcher):
            await eventually(outage_watched, 15, "the list outage to end")
            during = await row(pool, nid)
            done = await settled(pool, nid, 60)
    finally:
        await sms.close()
    assert during["status"] in ("pending", "sending")
    assert during["attempts"] >= 3, "the failed list calls were not counted as attempts"
    assert "list" in (during["last_error"] or "")
    assert longest_sending < 5, f"the row sat in sending for {longest_sending:.1f}s"
    [sent] = twilio.messages_to(PHONE)
    assert (done["status"], done["provider_id"]) == ("sent", sent.sid)


async def test_find_sent_matches_the_marker_of_a_queued_rewritten_message(twilio) -> None:
    """Twilio may rewrite a body's other characters and leaves DateSent empty while a message
    is queued. The marker still finds the one message."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url)
    try:

        def outbound(nid: uuid.UUID) -> OutboundMessage:
            body = "ALERT LBH-2026-0042 – last seen “Mare St”"
            return OutboundMessage(str(nid), "k", PHONE, "", body, tried_for=timedelta(seconds=1))

        mine, other = uuid.uuid4(), uuid.uuid4()
        sent = await sms.send(outbound(mine))
        await sms.send(outbound(other))  # the same text to the same contact, another message
        [ours] = [m for m in twilio.messages if m.sid == sent.provider_id]
        ours.body = ours.body.replace("–", "-").replace("“", '"').replace("”", '"')
        ours.date_sent = None
        assert await sms.find_sent(outbound(mine)) == sent.provider_id
        assert await sms.find_sent(outbound(uuid.uuid4())) is None
    finally:
        await sms.close()


async def test_a_take_over_whose_look_fails_still_looks_before_it_sends(pool, twilio) -> None:
    """A dispatcher died after Twilio took the SMS and before it marked the row. The one that
    takes the lease over cannot list (the list is down); its next attempt must still ask Twilio
    first, and find the SMS, rather than send a second copy (seen in a chaos run)."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=2)
    dispatcher = sweeper(pool, sms, allowance_s=0)
    nid = await add_row(pool, await open_alert(pool, CHILD), status="sending", lease_s=-1)
    try:
        body = (await row(pool, nid))["body"]
        # What the dead holder's attempt did: the SMS is at Twilio, the row still `sending`.
        sent = await sms.send(OutboundMessage(str(nid), "k", PHONE, "", body))
        twilio.outage(500, 3, ops=["list"])
        async with sweeping(dispatcher):
            done = await settled(pool, nid, 30)
    finally:
        await sms.close()
    assert len(twilio.messages_to(PHONE)) == 1, "the SMS was sent a second time"
    assert (done["status"], done["provider_id"]) == ("sent", sent.provider_id)
    assert done["attempts"] >= 2 and "list" in (done["last_error"] or "")


async def test_a_look_that_keeps_timing_out_holds_the_alert_back_no_longer_than_its_patience(
    pool, twilio
) -> None:
    """The first try's answer is lost, and every look after it runs past its bound (a busy
    number's pages on a loaded provider). The alert still goes, once the patience is spent,
    counted and recorded as sent unverified; before, the looks failed for ever and 523 due
    alerts of a chaos run were never sent."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=1)
    dispatcher = sweeper(pool, sms, allowance_s=0, look_patience=timedelta(seconds=3))
    twilio.drop_connection_next(1, accept=False)  # the answer lost: a look is needed
    twilio.set_list_delay(5)  # each page outlasts the 1 s bound of a request
    before = unverified()
    nid = await add_row(pool, await open_alert(pool, CHILD))

    async def look_failing() -> asyncpg.Record:
        r = await row(pool, nid)
        assert r["look_failed_at"] is not None, f"no failed look yet: {dict(r)}"
        return r

    try:
        async with sweeping(dispatcher):
            failing = await eventually(look_failing, 30, "a look to fail", every=0.1)
            done = await settled(pool, nid, 60)
    finally:
        await sms.close()
    assert failing["status"] == "pending" and "list" in (failing["last_error"] or "")
    [sent] = twilio.messages_to(PHONE)
    assert (done["status"], done["provider_id"]) == ("sent", sent.sid)
    assert done["unverified_sends"] == 1 and done["look_failed_at"] is None
    assert unverified() == before + 1
    waited = (done["updated_at"] - failing["look_failed_at"]).total_seconds()
    assert waited >= 3, "sent before the looks had failed for their patience"


def unverified() -> float:
    labels = {"channel": "sms"}
    return REGISTRY.get_sample_value("goldenhour_notifications_unverified_total", labels) or 0.0


async def test_a_message_is_sent_unverified_once_at_most(pool, twilio) -> None:
    """Every create is taken and answered after the client's timeout, and every look runs past
    its bound: the one unverified resend is itself ambiguous. The looks go on, and no third
    copy follows (one did every two minutes before)."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=1)
    dispatcher = sweeper(pool, sms, allowance_s=0, look_patience=timedelta(seconds=2))
    twilio.set_create_delay(2.5)
    twilio.set_list_delay(3)
    nid = await add_row(pool, await open_alert(pool, CHILD))
    try:
        async with sweeping(dispatcher):

            async def resent() -> int:
                r = await row(pool, nid)
                assert r["unverified_sends"] == 1, dict(r)
                return r["attempts"]

            at_resend = await eventually(resent, 60, "the unverified resend")

            # Two more attempts, each a look failing past the patience: the one that would send
            # a third copy, and one after it. Counted from the resend, not from the start, so a
            # loaded machine's slower backoff only makes the wait longer.
            async def looked_on() -> asyncpg.Record:
                r = await row(pool, nid)
                assert r["unverified_sends"] == 1 and r["attempts"] >= at_resend + 2, dict(r)
                return r

            await eventually(looked_on, 90, "the looks to go on after the unverified resend")
    finally:
        await sms.close()
    assert len(twilio.messages_to(PHONE)) == 2, "not the first try and one unverified resend"
    assert (await row(pool, nid))["unverified_sends"] == 1


async def test_a_look_that_answers_forgets_the_failures_before_it(pool, twilio) -> None:
    """The looks failed a while ago; this one answers, and its attempt then dies before it
    sends (here: its lease has run out). A take-over whose look fails once more must not count
    the old failures towards the patience and send unverified at once."""
    sms = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=2)
    # The lease is gone before the look answers: no fence passes.
    dispatcher = sweeper(pool, sms, allowance_s=0, lease=timedelta(milliseconds=100))
    nid = await add_row(pool, await open_alert(pool, CHILD), status="sending", lease_s=-1)
    await pool.execute(
        "UPDATE notifications SET attempts = 3, look_after = now() - interval '100 s',"
        " tried_at = now() - interval '100 s', look_failed_at = now() - interval '90 s'"
        " WHERE notification_id = $1",
        nid,
    )
    twilio.set_list_delay(0.3)
    try:
        await dispatcher.take_over(nid)
        answered = await row(pool, nid)
        twilio.outage(500, 5, ops=["list"])
        await dispatcher.take_over(nid)
        failed_once = await row(pool, nid)
    finally:
        await sms.close()
    assert answered["look_failed_at"] is None, "the answered look left the old failure"
    assert (failed_once["status"], failed_once["unverified_sends"]) == ("pending", 0)
    assert failed_once["look_failed_at"] is not None
    assert twilio.messages_to(PHONE) == []
