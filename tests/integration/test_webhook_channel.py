"""WebhookChannel over real HTTP (httpx) against the local aiohttp receiver, and sign/verify."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.dev.servers import free_port
from goldenhour.dev.webhook_local import LocalWebhookReceiver, ReceivedHook
from goldenhour.infra.webhook_signing import sign, verify
from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from goldenhour.notifiers.webhook import USER_AGENT, WebhookChannel

StartReceiver = Callable[..., Awaitable[LocalWebhookReceiver]]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "k3y" * 10
BODY = json.dumps(
    {
        "msg_type": "Alert",
        "case_reference": "LBH-2024-0042",
        "clothing": "red coat, white trainers — ‘Nike’",
        "risk_level": "high",
    },
    ensure_ascii=False,
)


def outbound(url: str, secret: str | None = SECRET, body: str = BODY) -> OutboundMessage:
    return OutboundMessage(
        notification_id=str(uuid.uuid4()),
        idempotency_key=f"{uuid.uuid4()}:share:sub-1:webhook",
        to=url,
        subject="",
        body=body,
        signing_secret=secret,
    )


@pytest.fixture
async def receiver(start_webhook_receiver: StartReceiver) -> LocalWebhookReceiver:
    return await start_webhook_receiver(SECRET)


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookChannel]:
    channel = WebhookChannel(timeout=5, allow_private=True)
    yield channel
    await channel.close()


async def delivered(receiver: LocalWebhookReceiver, webhook: WebhookChannel) -> ReceivedHook:
    """One real delivery, as the receiver recorded it."""
    await webhook.send(outbound(receiver.url()))
    [hook] = await receiver.wait_for(lambda h: True, timeout=2)
    return hook


async def test_send_is_received_signed(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    assert isinstance(webhook, Channel) and webhook.name == "webhook"
    assert webhook.reports_delivery is False
    msg = outbound(receiver.url("/lbi/alerts"))
    before = int(time.time())
    result = await webhook.send(msg)
    assert result.status == "sent" and result.provider_id == msg.notification_id
    [hook] = await receiver.wait_for(lambda h: True, timeout=2)
    assert hook.path == "/lbi/alerts" and hook.status == 200 and hook.verified
    assert hook.body == BODY.encode("utf-8")  # the exact bytes, not a re-serialisation
    assert hook.json == json.loads(BODY)
    h = hook.headers
    assert h["Content-Type"] == "application/json"
    assert h["User-Agent"] == USER_AGENT
    assert h["X-GoldenHour-Delivery"] == msg.notification_id == hook.delivery_id
    assert h["Idempotency-Key"] == msg.idempotency_key
    timestamp = int(h["X-GoldenHour-Timestamp"])
    assert before <= timestamp <= time.time()
    assert h["X-GoldenHour-Signature"] == sign(SECRET, timestamp, hook.body)
    assert h["X-GoldenHour-Signature"].startswith("sha256=")
    assert verify(SECRET, str(timestamp), h["X-GoldenHour-Signature"], hook.body, time.time())
    assert await webhook.poll(result.provider_id) is None
    assert await webhook.find_sent(msg) is None


async def test_the_signature_is_the_documented_hmac(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    # The recipe of docs/webhooks.md, standard library only.
    import hashlib
    import hmac

    hook = await delivered(receiver, webhook)
    ts = hook.headers["X-GoldenHour-Timestamp"]
    mac = hmac.new(SECRET.encode(), ts.encode() + b"." + hook.body, hashlib.sha256)
    assert hook.headers["X-GoldenHour-Signature"] == "sha256=" + mac.hexdigest()


async def test_the_documented_receiver_example_works(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, object] = {}
    exec(code, namespace)  # our own documentation, nothing from outside
    is_genuine = namespace["is_genuine"]
    assert callable(is_genuine)
    hook = await delivered(receiver, webhook)
    assert is_genuine(SECRET, hook.headers, hook.body)
    assert not is_genuine("whsec_wrong", hook.headers, hook.body)
    assert not is_genuine(SECRET, hook.headers, hook.body + b" ")
    ts = int(time.time()) - 301
    old = {**hook.headers, "X-GoldenHour-Timestamp": str(ts)}
    old["X-GoldenHour-Signature"] = sign(SECRET, ts, hook.body)
    assert not is_genuine(SECRET, old, hook.body)
    assert not is_genuine(SECRET, {}, hook.body)


async def test_verify_refuses_tampering_wrong_secret_and_replays(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    hook = await delivered(receiver, webhook)
    ts, sig = hook.headers["X-GoldenHour-Timestamp"], hook.headers["X-GoldenHour-Signature"]
    now = time.time()
    assert verify(SECRET, ts, sig, hook.body, now)
    tampered = hook.body.replace(b'"high"', b'"low"')
    assert tampered != hook.body
    assert not verify(SECRET, ts, sig, tampered, now)
    assert not verify("whsec_someone_else", ts, sig, hook.body, now)
    # The same delivery presented more than 5 minutes later (a replay), or too far ahead.
    assert not verify(SECRET, ts, sig, hook.body, int(ts) + 301)
    assert not verify(SECRET, ts, sig, hook.body, int(ts) - 301)
    assert verify(SECRET, ts, sig, hook.body, int(ts) + 300)
    # A fresh signature over an old or a future timestamp is refused just the same.
    for skew in (-301, -3600, 301, 86400):
        stamp = int(now) + skew
        assert not verify(SECRET, str(stamp), sign(SECRET, stamp, hook.body), hook.body, now)
    # A timestamp changed without re-signing fails on the signature.
    assert not verify(SECRET, str(int(ts) + 1), sig, hook.body, now)
    # Missing or malformed headers never raise.
    for bad_ts, bad_sig in (
        (None, sig),
        (ts, None),
        ("", sig),
        ("abc", sig),
        ("-1", sig),
        ("1e9", sig),
        (ts, sig.upper()),
        (ts, sig.removeprefix("sha256=")),
        (ts, "sha256=ü"),
    ):
        assert not verify(SECRET, bad_ts, bad_sig, hook.body, now)
    assert not verify("", ts, sig, hook.body, now)
    assert not verify(None, ts, sig, hook.body, now)


async def test_receiver_answers_401_to_a_bad_signature(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    with pytest.raises(PermanentSendError) as info:
        await webhook.send(outbound(receiver.url(), secret="whsec_wrong"))
    assert info.value.code == 401
    [hook] = await receiver.wait_for(lambda h: True, timeout=2)
    assert hook.verified is False and hook.status == 401


async def test_receiver_verifies_with_secret_for_each_path(
    start_webhook_receiver: StartReceiver, webhook: WebhookChannel
) -> None:
    secrets = {"/lbi": "whsec_lbi", "/cam": "whsec_cam"}
    server = await start_webhook_receiver(secret_for=secrets.get)
    await webhook.send(outbound(server.url("/lbi"), secret="whsec_lbi"))
    with pytest.raises(PermanentSendError):
        await webhook.send(outbound(server.url("/cam"), secret="whsec_lbi"))
    with pytest.raises(PermanentSendError):  # no secret known for the path at all
        await webhook.send(outbound(server.url("/other"), secret="whsec_lbi"))
    assert [(h.path, h.verified) for h in server.received] == [
        ("/lbi", True),
        ("/cam", False),
        ("/other", False),
    ]


async def test_the_receivers_request_id_never_becomes_the_provider_id(
    start_webhook_receiver: StartReceiver, webhook: WebhookChannel
) -> None:
    """The provider id shows on the alert's timeline: our own id goes there, never theirs."""
    server = await start_webhook_receiver(SECRET, request_ids=True)
    result = await webhook.send(outbound(server.url()))
    [hook] = server.received
    assert hook.request_id and result.provider_id == hook.delivery_id


async def test_a_request_id_not_shaped_like_one_is_not_kept(
    start_webhook_receiver: StartReceiver, webhook: WebhookChannel
) -> None:
    """The receiver's X-Request-Id shows on the alert's timeline: only an id goes there, never
    a text the subscriber chose."""
    server = await start_webhook_receiver(
        SECRET, request_ids="see https://evil.example/ Amira Tesfaye"
    )
    msg = outbound(server.url())
    result = await webhook.send(msg)
    assert result.provider_id == msg.notification_id


async def test_5xx_is_retryable_and_a_retry_keeps_the_delivery_id(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    receiver.fail_next(1, 503)
    msg = outbound(receiver.url())
    with pytest.raises(RetryableSendError) as info:
        await webhook.send(msg)
    assert "503" in str(info.value) and info.value.retry_after is None
    result = await webhook.send(msg)
    assert result.provider_id == msg.notification_id
    first, second = await receiver.wait_for(lambda h: True, count=2, timeout=2)
    assert [first.status, second.status] == [503, 200]
    assert first.verified and second.verified
    assert first.delivery_id == second.delivery_id == msg.notification_id
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


async def test_429_carries_retry_after(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    receiver.fail_next(1, 429, retry_after=7)
    with pytest.raises(RetryableSendError) as info:
        await webhook.send(outbound(receiver.url()))
    assert info.value.retry_after == 7


async def test_400_is_permanent(receiver: LocalWebhookReceiver, webhook: WebhookChannel) -> None:
    receiver.fail_next(1, 400)
    with pytest.raises(PermanentSendError) as info:
        await webhook.send(outbound(receiver.url()))
    assert info.value.code == 400
    assert "HTTP 400" in str(info.value)
    assert "injected failure" not in str(info.value)  # the receiver's answer is never quoted


async def test_redirects_are_not_followed(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    receiver.fail_next(1, 301)
    with pytest.raises(PermanentSendError, match="redirects are not followed") as info:
        await webhook.send(outbound(receiver.url()))
    assert info.value.code == 301
    [hook] = receiver.received
    assert hook.path == "/hook"  # nothing went to the Location it pointed at


async def test_a_hang_beyond_the_timeout_is_retryable(receiver: LocalWebhookReceiver) -> None:
    receiver.hang_next(1, 5.0)
    channel = WebhookChannel(timeout=0.5, allow_private=True)
    started = time.monotonic()
    try:
        with pytest.raises(RetryableSendError, match="timed out"):
            await channel.send(outbound(receiver.url()))
    finally:
        await channel.close()
    assert time.monotonic() - started < 3
    [hook] = receiver.received  # it did arrive: the receiver must de-duplicate the retry
    assert hook.verified


async def test_closed_port_is_retryable(webhook: WebhookChannel) -> None:
    with pytest.raises(RetryableSendError):
        await webhook.send(outbound(f"http://127.0.0.1:{free_port()}/hook"))


async def test_unusable_messages_are_permanent(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    for url in ("ftp://127.0.0.1/hook", "file:///etc/passwd", "not a url", ""):
        with pytest.raises(PermanentSendError):
            await webhook.send(outbound(url))
    with pytest.raises(PermanentSendError, match="secret"):
        await webhook.send(outbound(receiver.url(), secret=None))
    assert receiver.received == []


async def test_client_is_remade_after_close(
    receiver: LocalWebhookReceiver, webhook: WebhookChannel
) -> None:
    await webhook.send(outbound(receiver.url()))
    await webhook.close()
    await webhook.close()  # twice is harmless
    await webhook.send(outbound(receiver.url()))
    assert len(await receiver.wait_for(lambda h: h.status == 200, count=2, timeout=2)) == 2


# sign/verify as pure functions: any body, any (non-empty) secret.

# No NUL: HMAC pads short keys with zero bytes, so "k" and "k\0" are the same key. No lone
# surrogates: they have no UTF-8 form. Real secrets are URL-safe tokens.
secrets_ = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=64
)
bodies = st.binary(max_size=2048)
stamps = st.integers(min_value=0, max_value=2**40)


@given(secret=secrets_, body=bodies, ts=stamps, skew=st.integers(-300, 300))
def test_sign_verify_round_trip(secret: str, body: bytes, ts: int, skew: int) -> None:
    signature = sign(secret, ts, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(secret, str(ts), signature, body, now=ts + skew)


@given(
    secret=secrets_,
    body=st.binary(min_size=1, max_size=2048),
    ts=stamps,
    data=st.data(),
)
def test_any_single_byte_change_fails(secret: str, body: bytes, ts: int, data) -> None:
    signature = sign(secret, ts, body)
    i = data.draw(st.integers(0, len(body) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[i]), label="byte")
    changed = body[:i] + bytes([new]) + body[i + 1 :]
    assert not verify(secret, str(ts), signature, changed, now=ts)


@given(secret=secrets_, other=secrets_, body=bodies, ts=stamps)
def test_another_secret_fails(secret: str, other: str, body: bytes, ts: int) -> None:
    signature = sign(secret, ts, body)
    assert verify(other, str(ts), signature, body, now=ts) == (other == secret)


@given(secret=secrets_, body=bodies, ts=stamps, skew=st.integers(301, 10**9))
def test_outside_the_window_fails_either_way(secret: str, body: bytes, ts: int, skew: int) -> None:
    signature = sign(secret, ts, body)
    assert not verify(secret, str(ts), signature, body, now=ts + skew)
    assert not verify(secret, str(ts), signature, body, now=ts - skew)
