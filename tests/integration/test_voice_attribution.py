"""Voice calls to one number from several messages (a police control room hears of every
child): a call whose callbacks are late is claimed by no other message, and no message rings
twice; a call whose callbacks never come is still found, once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.base import OutboundMessage
from goldenhour.notifiers.channels import owned_sids, recorded_sid
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.status import apply_status
from goldenhour.notifiers.voice import CALLBACK_WAIT, LOOK_AGAIN_S, TwilioVoice
from tests.integration.providers import ACCOUNT, FROM, PHONE, PUBLIC_URL, TOKEN, TwilioEndpoints
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row
from tests.integration.test_delivery_reconcile import settled, sweeping


def voice_channel(
    pool: asyncpg.Pool, twilio: LocalTwilio, hooks: TwilioEndpoints, wait: timedelta
) -> TwilioVoice:
    return TwilioVoice(
        ACCOUNT,
        TOKEN,
        FROM,
        hooks.base_url,
        api_base_url=twilio.base_url,
        timeout=5,
        recorded_sid=recorded_sid(pool),
        owned_sids=owned_sids(pool),
        callback_wait=wait,
    )


def dispatcher_for(pool: asyncpg.Pool, voice: TwilioVoice) -> Dispatcher:
    return Dispatcher(
        pool,
        {"voice": voice},
        PUBLIC_URL,
        repoll_after=timedelta(minutes=5),
        processing_allowance=timedelta(0),
        sweep_every_s=0.2,
    )


async def left_behind(pool: asyncpg.Pool, alert_id: uuid.UUID, contact: str) -> uuid.UUID:
    """A voice message to PHONE whose dispatcher died mid-send: `sending`, its lease run out."""
    return await add_row(
        pool,
        alert_id,
        channel="voice",
        address=PHONE,
        contact=contact,
        status="sending",
        lease_s=-1,
    )


async def placed_by_the_dead_dispatcher(voice: TwilioVoice, pool: asyncpg.Pool, nid) -> str:
    body = (await row(pool, nid))["body"]
    return (await voice.send(OutboundMessage(str(nid), "k", PHONE, "", body))).provider_id


def message_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["n"][0]


@pytest.fixture
async def alert_id(pool: asyncpg.Pool) -> uuid.UUID:
    return await open_alert(pool, CHILD)


@pytest.fixture
async def held(twilio: LocalTwilio) -> AsyncIterator[LocalTwilio]:
    twilio.hold_callbacks(True)
    yield twilio
    twilio.hold_callbacks(False)


async def test_a_call_with_late_callbacks_is_taken_by_no_other_message_and_rings_once(
    pool: asyncpg.Pool, held: LocalTwilio, twilio_endpoints: TwilioEndpoints, alert_id
) -> None:
    """The chaos run's order: N2 reconciled while N1's call awaits its callbacks must not take
    it; N1 reconciled before they come must not ring again; once they record it on N1, N2
    places its own call."""
    voice = voice_channel(pool, held, twilio_endpoints, CALLBACK_WAIT)
    dispatcher = dispatcher_for(pool, voice)
    n1 = await left_behind(pool, alert_id, "c1")
    n2 = await left_behind(pool, alert_id, "c2")
    try:
        call_c = await placed_by_the_dead_dispatcher(voice, pool, n1)
        await dispatcher.take_over(n2)
        await dispatcher.take_over(n1)
        for nid in (n2, n1):
            waiting = await row(pool, nid)
            assert (waiting["status"], waiting["provider_id"]) == ("pending", None), dict(waiting)
            assert "awaits its callbacks" in waiting["last_error"]
            assert waiting["look_after"] is not None, "its next try still looks first"
            look_again = waiting["next_attempt_at"] - waiting["updated_at"]
            assert look_again <= timedelta(seconds=LOOK_AGAIN_S), "it looks again soon"
        assert [c.sid for c in held.calls_to(PHONE)] == [call_c], "nobody rang again"

        held.hold_callbacks(False)
        (post, *_) = await eventually(
            lambda: [p for p in twilio_endpoints.posts if p.form.get("CallSid") == call_c],
            10,
            "the call's first callback",
        )
        # What the API's status endpoint does with it: C is recorded on the row it names.
        assert message_of(post.url) == str(n1)
        await apply_status(pool, "sent", None, notification_id=n1, provider_id=call_c)

        await dispatcher.send_requested(n2, due_by=(await row(pool, n2))["next_attempt_at"])
        done1, done2 = await row(pool, n1), await row(pool, n2)
    finally:
        await voice.close()
    assert (done1["status"], done1["provider_id"]) == ("sent", call_c)
    assert done2["status"] == "sent" and done2["provider_id"] not in (None, call_c)
    calls = {c.sid: message_of(c.url) for c in held.calls_to(PHONE)}
    assert calls == {call_c: str(n1), done2["provider_id"]: str(n2)}, "one call per message"


async def test_a_call_whose_callbacks_never_come_is_claimed_once_not_placed_again(
    pool: asyncpg.Pool, held: LocalTwilio, twilio_endpoints: TwilioEndpoints, alert_id
) -> None:
    """The API is down for longer than the callback wait: once the call is overdue and still
    owned by no row, the message left behind takes it, and rings nobody a second time."""
    voice = voice_channel(pool, held, twilio_endpoints, timedelta(seconds=2))
    dispatcher = dispatcher_for(pool, voice)
    nid = await left_behind(pool, alert_id, "c1")
    try:
        call_c = await placed_by_the_dead_dispatcher(voice, pool, nid)
        async with sweeping(dispatcher):
            done = await settled(pool, nid, 60)
    finally:
        await voice.close()
    assert (done["status"], done["provider_id"]) == ("sent", call_c)
    assert [c.sid for c in held.calls_to(PHONE)] == [call_c], "the call was placed again"
    assert twilio_endpoints.posts == [], "no callback recorded it"


async def test_a_message_waiting_on_callbacks_stops_when_its_step_stops_mattering(
    pool: asyncpg.Pool, held: LocalTwilio, twilio_endpoints: TwilioEndpoints, alert_id
) -> None:
    """The wait for another call's callbacks is a retry like any other: an alert resolved
    meanwhile cancels the message, and nothing is rung for it."""
    voice = voice_channel(pool, held, twilio_endpoints, CALLBACK_WAIT)
    dispatcher = dispatcher_for(pool, voice)
    n1 = await left_behind(pool, alert_id, "c1")
    n2 = await left_behind(pool, alert_id, "c2")
    try:
        call_c = await placed_by_the_dead_dispatcher(voice, pool, n1)
        await pool.execute("UPDATE alerts SET status = 'resolved' WHERE alert_id = $1", alert_id)
        await dispatcher.take_over(n2)
        done = await row(pool, n2)
    finally:
        await voice.close()
    assert (done["status"], done["provider_id"]) == ("cancelled", None), dict(done)
    assert "awaits its callbacks" in done["last_error"]
    assert [c.sid for c in held.calls_to(PHONE)] == [call_c]


async def test_callbacks_are_held_and_released_from_another_process(
    twilio: LocalTwilio, twilio_endpoints: TwilioEndpoints
) -> None:
    """A stack's local Twilio holds a call's callbacks back on request, and lets them go."""
    voice = TwilioVoice(
        ACCOUNT, TOKEN, FROM, twilio_endpoints.base_url, api_base_url=twilio.base_url
    )
    async with httpx.AsyncClient(base_url=twilio.base_url, timeout=5) as c:
        r = await c.post("/_local/hold_callbacks", json={"held": "yes"})
        assert r.status_code == 400
        assert (await c.post("/_local/hold_callbacks", json={"held": True})).json()["held"]
        try:
            placed = await voice.send(OutboundMessage(str(uuid.uuid4()), "k", PHONE, "", "x"))
            assert await voice.poll(placed.provider_id) == "sent"
            assert twilio_endpoints.posts == [] and twilio.calls[0].status == "queued"
            r = await c.post("/_local/hold_callbacks", json={"held": False})
            assert r.json() == {"ok": True, "held": False}
            await twilio.wait_for_call(lambda call: call.status == "completed")
        finally:
            await voice.close()
    assert {p.form["CallSid"] for p in twilio_endpoints.posts} == {placed.provider_id}
