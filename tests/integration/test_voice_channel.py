"""TwilioVoice and the local server's Calls API, through the real twilio library: the call
fetches its TwiML signed, plays it, takes scripted keys, and reports its progress; outages,
list lag and scripted outcomes behave as Twilio's would."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.base import OutboundMessage, PermanentSendError, RetryableSendError
from goldenhour.notifiers.voice import TwilioVoice, call_status
from tests.integration.providers import ACCOUNT, FROM, TOKEN, TwilioEndpoints

TO = "+447700900123"
SCRIPT = "Golden Hour alert. Case reference L B H dash 4 2. Press 1 to acknowledge."


def our_voice_endpoints(path: str, form: dict[str, str]) -> str | None:
    """The alert in a Gather, `1` thanked, status callbacks taken."""
    if path.endswith("/status"):
        return None
    if path.endswith("/keypad"):
        said = "Acknowledged." if form.get("Digits") == "1" else "Again."
        return f"<Response><Say>{said}</Say></Response>"
    return (
        '<?xml version="1.0"?><Response><Gather action="/api/v1/webhooks/twilio/voice/'
        f'keypad" numDigits="1"><Say>{SCRIPT}</Say><Say>{SCRIPT}</Say></Gather>'
        "<Say>Goodbye.</Say></Response>"
    )


def statuses(hooks: TwilioEndpoints) -> list[str]:
    return [p.form["CallStatus"] for p in hooks.posts if p.path.endswith("/status")]


def outbound(to: str = TO) -> OutboundMessage:
    return OutboundMessage(str(uuid.uuid4()), "a:s0:c:voice", to, "", SCRIPT)


@pytest.fixture
def hooks(twilio_endpoints: TwilioEndpoints) -> TwilioEndpoints:
    twilio_endpoints.answer = our_voice_endpoints
    return twilio_endpoints


@pytest.fixture
async def voice(twilio: LocalTwilio, hooks: TwilioEndpoints) -> AsyncIterator[TwilioVoice]:
    recorded: dict[str, str] = {}

    async def lookup(notification_id: str) -> str | None:
        return recorded.get(notification_id)

    channel = TwilioVoice(
        ACCOUNT, TOKEN, FROM, hooks.base_url, api_base_url=twilio.base_url, recorded_sid=lookup
    )
    channel.recorded = recorded  # type: ignore[attr-defined]
    yield channel
    await channel.close()


async def test_a_call_plays_its_twiml_takes_1_and_reports_progress(
    twilio: LocalTwilio, hooks: TwilioEndpoints, voice: TwilioVoice
) -> None:
    twilio.press(TO, "1")
    msg = outbound()
    result = await voice.send(msg)
    assert result.provider_id.startswith("CA") and result.status == "sent"
    (call,) = await twilio.wait_for_call(lambda c: c.status == "completed")
    assert call.said == [SCRIPT, SCRIPT, "Acknowledged."] and call.pressed == ["1"]
    assert call.url == f"{hooks.base_url}/api/v1/webhooks/twilio/voice?n={msg.notification_id}"
    assert all(p.signed_with(TOKEN) for p in hooks.posts), "every webhook is signed"
    twiml, keypad = (p.form for p in hooks.posts if not p.path.endswith("/status"))
    assert twiml["CallSid"] == call.sid and keypad["Digits"] == "1"
    # The call's record says completed a moment before its last status callback is posted.
    await eventually(lambda: len(statuses(hooks)) >= 4, 5, "the last status callback")
    assert statuses(hooks) == ["queued", "ringing", "in-progress", "completed"]
    assert f"status?n={msg.notification_id}" in (call.status_callback or "")
    assert await voice.poll(call.sid) == "delivered"
    assert await voice.poll("CA" + "0" * 32) is None


async def test_no_key_plays_on_to_the_goodbye_and_a_wrong_key_repeats(
    twilio: LocalTwilio, voice: TwilioVoice
) -> None:
    await voice.send(outbound())
    twilio.press("+447700900124", "2")
    await voice.send(outbound("+447700900124"))
    await twilio.wait_for_call(lambda c: c.status == "completed", count=2)
    silent, wrong = twilio.calls
    assert silent.said == [SCRIPT, SCRIPT, "Goodbye."] and silent.pressed == []
    assert wrong.said == [SCRIPT, SCRIPT, "Again."] and wrong.pressed == ["2"]


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
async def test_scripted_outcomes_end_the_call_unheard(
    twilio: LocalTwilio, hooks: TwilioEndpoints, voice: TwilioVoice, outcome: str
) -> None:
    twilio.set_call_outcome(TO, outcome)
    await voice.send(outbound())
    (call,) = await twilio.wait_for_call(lambda c: c.status == outcome)
    await asyncio.sleep(0.1)
    assert call.said == [] and statuses(hooks)[-1] == outcome
    assert call_status(outcome) == "failed"


async def test_outage_of_call_creates_is_retryable_with_retry_after(
    twilio: LocalTwilio, voice: TwilioVoice
) -> None:
    twilio.outage(429, 30, retry_after=7, ops=("call_create",))
    with pytest.raises(RetryableSendError) as raised:
        await voice.send(outbound())
    assert raised.value.retry_after == 7
    assert not twilio.calls
    twilio.outage(429, 0, ops=("call_create",))
    await voice.send(outbound())
    assert len(twilio.calls) == 1


async def test_an_outage_ends_by_itself(twilio: LocalTwilio, voice: TwilioVoice) -> None:
    twilio.outage(503, 0.3, ops=("call_create", "create"))
    with pytest.raises(RetryableSendError):
        await voice.send(outbound())
    await asyncio.sleep(0.4)
    await voice.send(outbound())


async def test_invalid_number_is_permanent(voice: TwilioVoice) -> None:
    with pytest.raises(PermanentSendError) as raised:
        await voice.send(outbound("07700 900123"))
    assert raised.value.code == 21211


async def test_find_sent_trusts_only_a_recorded_sid_twilio_knows(
    twilio: LocalTwilio, voice: TwilioVoice
) -> None:
    msg = outbound()
    sid = (await voice.send(msg)).provider_id
    assert await voice.find_sent(msg) is None, "no callback recorded it yet"
    voice.recorded[msg.notification_id] = sid  # type: ignore[attr-defined]
    assert await voice.find_sent(msg) == sid
    voice.recorded[msg.notification_id] = "CA" + "0" * 32  # type: ignore[attr-defined]
    assert await voice.find_sent(msg) is None


async def test_list_lag_hides_new_calls_and_messages(
    twilio: LocalTwilio, voice: TwilioVoice
) -> None:
    twilio.set_list_lag(0.5)
    await voice.send(outbound())
    client = voice._twilio()
    assert [c async for c in await client.calls.stream_async(to=TO)] == []
    await asyncio.sleep(0.6)
    assert len([c async for c in await client.calls.stream_async(to=TO)]) == 1


async def test_control_endpoints_drive_a_server_in_another_process(twilio: LocalTwilio) -> None:
    async with httpx.AsyncClient(base_url=twilio.base_url, timeout=5) as c:
        r = await c.post("/_local/outage", json={"status": 500, "seconds": 60, "ops": ["list"]})
        assert r.status_code == 200 and r.json()["ops"] == ["list"]
        r = await c.post("/_local/outage", json={"status": 500, "seconds": 60, "ops": ["nope"]})
        assert r.status_code == 400 and "nope" in r.text
        assert (await c.post("/_local/create_delay", json={"seconds": 12})).json()["seconds"] == 12
        assert (await c.post("/_local/list_lag", json={"seconds": 30})).json()["seconds"] == 30
        assert (await c.post("/_local/press", json={"phone": TO, "digits": "1"})).status_code == 200
        r = await c.post("/_local/press", json={"phone": TO, "digits": "x"})
        assert r.status_code == 400
        r = await c.post("/_local/call_outcome", json={"phone": TO, "outcome": "busy"})
        assert r.status_code == 200
        assert (await c.get("/_local/calls")).json() == {"calls": []}


async def test_a_call_whose_callbacks_never_came_is_found_not_placed_again(
    twilio: LocalTwilio, hooks: TwilioEndpoints
) -> None:
    """The API was restarting: no callback recorded the CallSid. A retry must find the call
    placed since the message was written that no other message owns, not ring again (once the
    callbacks have had their time: here none, so the call is claimed at once)."""
    owned: set[str] = set()

    async def owned_sids(sids: list[str]) -> set[str]:
        return owned & set(sids)

    async def nothing_recorded(notification_id: str) -> str | None:
        return None

    channel = TwilioVoice(
        ACCOUNT,
        TOKEN,
        FROM,
        hooks.base_url,
        api_base_url=twilio.base_url,
        recorded_sid=nothing_recorded,
        owned_sids=owned_sids,
        callback_wait=timedelta(0),
    )
    try:
        other = await channel.send(outbound())  # another message's call, owned by its row
        owned.add(other.provider_id)
        msg = dataclasses.replace(outbound(), tried_for=timedelta(0))
        assert await channel.find_sent(msg) is None, "only another message's call so far"
        placed = await channel.send(msg)
        assert await channel.find_sent(msg) == placed.provider_id
        assert len(twilio.calls_to(TO)) == 2
    finally:
        await channel.close()
