"""TwilioSms through the real twilio library against the local Twilio-compatible server."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from goldenhour.dev.servers import free_port
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from goldenhour.notifiers.sms import TwilioSms, ref_of
from tests.integration.providers import ACCOUNT, FROM, TOKEN, TwilioEndpoints

TO = "+447700900123"
ROOT = Path(__file__).resolve().parents[2]


def outbound(body: str = "Missing child alert", to: str = TO, **kw: object) -> OutboundMessage:
    alert = uuid.uuid4()
    return OutboundMessage(
        notification_id=str(uuid.uuid4()),
        idempotency_key=f"{alert}:t0:contact-1:sms",
        to=to,
        subject="",
        body=body,
        **kw,  # type: ignore[arg-type]
    )


async def test_send_records_message_and_returns_sid(twilio: LocalTwilio, sms: TwilioSms) -> None:
    assert isinstance(sms, Channel) and sms.name == "sms"
    msg = outbound("Child A missing from Oak House")
    result = await sms.send(msg)
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    assert result.status == "sent"
    [sent] = twilio.messages_to(TO)
    assert (sent.sid, sent.from_, sent.body) == (
        result.provider_id,
        FROM,
        f"Child A missing from Oak House Ref {ref_of(msg.notification_id)}",
    )
    assert abs(sent.received_at - datetime.now(UTC).timestamp()) < 5


async def test_status_callbacks_are_signed(
    twilio: LocalTwilio, sms: TwilioSms, twilio_endpoints: TwilioEndpoints
) -> None:
    url = f"{twilio_endpoints.base_url}/webhooks/twilio/status?n=1"
    result = await sms.send(outbound(status_callback_url=url))
    posts = await twilio_endpoints.wait(2)
    assert [post.form["MessageStatus"] for post in posts] == ["sent", "delivered"]
    for post in posts:
        assert post.url == url
        assert post.form["MessageSid"] == result.provider_id and post.form["AccountSid"] == ACCOUNT
        assert post.signed_with(TOKEN)
        assert not post.signed_with("other-token")


async def test_undelivered_final_status(
    twilio: LocalTwilio, sms: TwilioSms, twilio_endpoints: TwilioEndpoints
) -> None:
    twilio.set_final_status(TO, "undelivered")
    result = await sms.send(outbound(status_callback_url=f"{twilio_endpoints.base_url}/status"))
    *_, last = await twilio_endpoints.wait(2)
    assert last.form["MessageStatus"] == "undelivered"
    assert last.form["ErrorCode"] == "30003"
    assert await sms.poll(result.provider_id) == "undelivered"


async def test_rate_limit_is_retryable_with_retry_after(
    twilio: LocalTwilio, sms: TwilioSms
) -> None:
    twilio.fail_next(1, 429, retry_after=2)
    with pytest.raises(RetryableSendError) as err:
        await sms.send(outbound())
    assert err.value.retry_after == 2.0
    assert twilio.messages == []
    assert (await sms.send(outbound())).provider_id  # the next attempt goes through


async def test_retry_after_stays_with_its_own_send(twilio: LocalTwilio, sms: TwilioSms) -> None:
    twilio.fail_next(1, 429, retry_after=3)
    results = await asyncio.gather(
        *(sms.send(outbound()) for _ in range(5)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], RetryableSendError)
    assert errors[0].retry_after == 3.0
    assert len(twilio.messages) == 4


async def test_server_error_is_retryable(twilio: LocalTwilio, sms: TwilioSms) -> None:
    twilio.fail_next(1, 503)
    with pytest.raises(RetryableSendError) as err:
        await sms.send(outbound())
    assert err.value.retry_after is None


async def test_invalid_number_is_permanent(twilio: LocalTwilio, sms: TwilioSms) -> None:
    with pytest.raises(PermanentSendError) as err:
        await sms.send(outbound(to="07700 900123"))
    assert err.value.code == 21211
    assert twilio.messages == []


async def test_a_wrong_auth_token_is_retried_not_the_recipients_fault(twilio: LocalTwilio) -> None:
    """A rotated token or a suspended account fails every message alike: giving each up for
    good would lose every alert until someone resent them by hand. It is retried (and the
    failover and unreachable notice tell people) until the credentials are mended."""
    channel = TwilioSms(ACCOUNT, "wrong-token", FROM, api_base_url=twilio.base_url)
    try:
        with pytest.raises(RetryableSendError) as err:
            await channel.send(outbound())
        assert "401" in str(err.value) and not err.value.ambiguous
        with pytest.raises(RetryableSendError):
            await channel.find_sent(outbound())
    finally:
        await channel.close()


async def test_server_down_is_retryable() -> None:
    channel = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(RetryableSendError):
            await channel.send(outbound())
    finally:
        await channel.close()


async def test_silent_server_times_out_as_retryable() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # read the request, never answer
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=f"http://127.0.0.1:{port}", timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RetryableSendError):
            await channel.send(outbound())
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await channel.close()
        server.close()
        await server.wait_closed()


async def test_poll_reaches_delivered_without_callbacks(
    twilio: LocalTwilio, sms: TwilioSms
) -> None:
    twilio.set_callbacks(False)
    result = await sms.send(outbound(status_callback_url="http://127.0.0.1:9/never"))
    assert await sms.poll(result.provider_id) in ("queued", "sent", "delivered")
    await twilio.wait_for(lambda m: m.status == "delivered", timeout=2)
    assert await sms.poll(result.provider_id) == "delivered"
    assert await sms.poll("SM" + "0" * 32) is None


async def test_find_sent_finds_the_copy(twilio: LocalTwilio, sms: TwilioSms) -> None:
    msg = outbound("Golden hour: Child B", tried_for=timedelta(seconds=1))
    result = await sms.send(msg)
    await sms.send(outbound("another alert"))
    assert await sms.find_sent(msg) == result.provider_id
    assert await sms.find_sent(outbound("never sent", tried_for=timedelta(seconds=1))) is None


async def test_find_sent_pages_back_past_a_busy_number(twilio: LocalTwilio, sms: TwilioSms) -> None:
    # A control room is told of every child: hundreds of later messages to the same number must
    # not hide the one a dead dispatcher sent (a first page of 200 once did, and it went twice).
    msg = outbound("Golden hour: the one to find", tried_for=timedelta(seconds=1))
    result = await sms.send(msg)
    await asyncio.gather(*(sms.send(outbound(f"later alert {i}")) for i in range(450)))
    assert await sms.find_sent(msg) == result.provider_id


async def test_find_sent_reads_back_only_to_the_first_attempt(
    twilio: LocalTwilio, sms: TwilioSms
) -> None:
    """A busy number's older messages are not read on every look: a look once paged through a
    control room's quarter of an hour on each retry, ran past its bound every time, and held
    523 due alerts back for good."""
    mine = outbound("Golden hour: sent ten minutes ago")
    sent = await sms.send(mine)
    await asyncio.gather(*(sms.send(outbound(f"earlier alert {i}")) for i in range(450)))
    for m in twilio.messages_to(TO):
        m.date_created -= timedelta(minutes=10)
    await sms.send(outbound("an alert of this minute"))
    twilio.message_pages_listed = 0
    recent = dataclasses.replace(mine, tried_for=timedelta(seconds=5))
    assert await sms.find_sent(recent) is None, "a copy older than the first attempt was taken"
    assert twilio.message_pages_listed == 1, "the look read past the message's first attempt"
    assert await sms.find_sent(dataclasses.replace(mine, tried_for=timedelta(minutes=11))) == (
        sent.provider_id
    )


async def test_pages_keep_their_place_while_messages_arrive(
    twilio: LocalTwilio, sms: TwilioSms
) -> None:
    """As Twilio's, the local list pages by a cursor: a message sent between two pages neither
    repeats one of the first page on the second nor pushes one out of both."""
    await asyncio.gather(*(sms.send(outbound(f"alert {i}")) for i in range(250)))
    first = await sms._twilio().messages.page_async(to=TO, page_size=100)
    await sms.send(outbound("sent between the pages"))
    second = await first.next_page_async()
    third = await second.next_page_async()
    seen = [m.body.split(" Ref ")[0] for page in (first, second, third) for m in page]
    assert sorted(seen) == sorted(f"alert {i}" for i in range(250))
    assert third.next_page_url is None


async def test_lost_response_then_find_sent_recovers(twilio: LocalTwilio, sms: TwilioSms) -> None:
    twilio.drop_connection_next(1, accept=True)
    msg = outbound("Alert whose reply got lost", tried_for=timedelta(0))
    with pytest.raises(RetryableSendError):
        await sms.send(msg)
    [accepted] = twilio.messages
    assert await sms.find_sent(msg) == accepted.sid


async def test_dropped_before_accept_leaves_nothing(twilio: LocalTwilio, sms: TwilioSms) -> None:
    twilio.drop_connection_next(1, accept=False)
    msg = outbound("Alert that never arrived", tried_for=timedelta(0))
    with pytest.raises(RetryableSendError):
        await sms.send(msg)
    assert twilio.messages == []
    assert await sms.find_sent(msg) is None


# The stock AsyncTwilioHttpClient still uses aiohttp's deprecated auth= (TwilioSms does not).
@pytest.mark.filterwarnings("ignore:.*(BasicAuth|'auth' parameter).*:DeprecationWarning")
async def test_library_paging_against_local_server(twilio: LocalTwilio, sms: TwilioSms) -> None:
    for i in range(5):
        await sms.send(outbound(f"page test {i}"))
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT, TOKEN, http_client=http, environment={})
    client.api.base_url = twilio.base_url
    try:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        listed = await client.messages.list_async(
            to=TO, from_=FROM, date_sent_after=today, page_size=2
        )
        bodies = [m.body.rsplit(" Ref ", 1)[0] for m in listed]
        assert bodies == [f"page test {i}" for i in reversed(range(5))]
    finally:
        await http.close()


async def test_send_inbound_is_signed(
    twilio: LocalTwilio, twilio_endpoints: TwilioEndpoints
) -> None:
    url = f"{twilio_endpoints.base_url}/webhooks/twilio/inbound"
    status, text = await twilio.send_inbound(url, from_=TO, to=FROM, body="ACK 1234")
    assert status == 200 and "Response" in text
    [post] = twilio_endpoints.posts
    form = post.form
    assert (form["From"], form["To"], form["Body"], form["NumMedia"]) == (TO, FROM, "ACK 1234", "0")
    assert post.signed_with(TOKEN)


async def test_control_endpoints(twilio: LocalTwilio, sms: TwilioSms) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{twilio.base_url}/_local/fail_next", json={"n": 1, "status": 500}):
            pass
        with pytest.raises(RetryableSendError):
            await sms.send(outbound())
        await sms.send(outbound("recorded"))
        async with http.get(f"{twilio.base_url}/_local/messages") as resp:
            records = (await resp.json())["messages"]
    assert [r["body"].rsplit(" Ref ", 1)[0] for r in records] == ["recorded"]
    assert isinstance(records[0]["received_at"], float)


async def test_runs_as_a_process() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goldenhour.dev.twilio_local", "--port", str(port),
        "--account-sid", ACCOUNT, "--auth-token", TOKEN,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line.decode().strip() == f"READY http://127.0.0.1:{port}"
        channel = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=f"http://127.0.0.1:{port}")
        try:
            await channel.send(outbound("out of process"))
        finally:
            await channel.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/_local/messages") as resp:
                bodies = [m["body"] for m in (await resp.json())["messages"]]
                assert [b.rsplit(" Ref ", 1)[0] for b in bodies] == ["out of process"]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
