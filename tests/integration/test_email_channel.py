"""SmtpEmail through aiosmtplib against the local aiosmtpd server."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from goldenhour.dev.servers import free_port
from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.waiting import wait_for_matches
from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from goldenhour.notifiers.email import SmtpEmail, message_id_for

FROM = "alerts@goldenhour.test"
TO = "duty.manager@council.test"
ROOT = Path(__file__).resolve().parents[2]


def outbound(to: str = TO, key: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        notification_id=str(uuid.uuid4()),
        idempotency_key=key or f"{uuid.uuid4()}:t15:contact-7:email",
        to=to,
        subject="MISSING: child from Oak House — 15 min",
        body="Child reported missing at 14:02.\nReply ACK to acknowledge.",
    )


@pytest.fixture
def email(smtp: LocalSmtp) -> SmtpEmail:
    return SmtpEmail("127.0.0.1", smtp.port, FROM, tls="off", timeout=5)


async def test_send_is_received(smtp: LocalSmtp, email: SmtpEmail) -> None:
    assert isinstance(email, Channel) and email.name == "email"
    msg = outbound()
    result = await email.send(msg)
    assert result.status == "sent"
    assert result.provider_id == message_id_for(msg.idempotency_key)
    [mail] = await smtp.wait_for(lambda m: True, timeout=2)
    assert mail.mail_from == FROM and mail.rcpt_tos == [TO]
    assert mail.subject == msg.subject
    assert mail.body.strip() == msg.body
    assert mail.message_id == result.provider_id
    assert mail.headers["X-GoldenHour-Idempotency-Key"] == msg.idempotency_key
    assert await email.poll(result.provider_id) is None
    assert await email.find_sent(msg) is None
    await email.close()


async def test_retries_carry_the_same_message_id(smtp: LocalSmtp, email: SmtpEmail) -> None:
    key = f"{uuid.uuid4()}:t0:contact-1:email"
    first = await email.send(outbound(key=key))
    second = await email.send(outbound(key=key))
    assert first.provider_id == second.provider_id
    assert len({m.message_id for m in await smtp.wait_for(lambda m: True, count=2)}) == 1


async def test_server_stopped_is_retryable(smtp: LocalSmtp, email: SmtpEmail) -> None:
    await asyncio.to_thread(smtp.stop)
    with pytest.raises(RetryableSendError):
        await email.send(outbound())


async def test_nothing_listening_is_retryable() -> None:
    with pytest.raises(RetryableSendError):
        await SmtpEmail("127.0.0.1", free_port(), FROM, tls="off", timeout=2).send(outbound())


async def test_rejected_recipient_is_permanent(smtp: LocalSmtp, email: SmtpEmail) -> None:
    smtp.reject_recipient("gone@council.test", 550)
    with pytest.raises(PermanentSendError) as err:
        await email.send(outbound(to="gone@council.test"))
    assert err.value.code == 550


async def test_greylisted_recipient_is_retryable(smtp: LocalSmtp, email: SmtpEmail) -> None:
    smtp.reject_recipient("busy@council.test", 450)
    with pytest.raises(RetryableSendError):
        await email.send(outbound(to="busy@council.test"))


async def test_data_reply_codes(smtp: LocalSmtp, email: SmtpEmail) -> None:
    smtp.fail_next(1, 451)
    with pytest.raises(RetryableSendError):
        await email.send(outbound())
    smtp.fail_next(1, 554)
    with pytest.raises(PermanentSendError):
        await email.send(outbound())
    assert smtp.messages == []
    await email.send(outbound())
    assert len(smtp.messages) == 1


async def test_header_injection_is_neutralised(smtp: LocalSmtp, email: SmtpEmail) -> None:
    msg = outbound()
    evil = OutboundMessage(
        notification_id=msg.notification_id,
        idempotency_key=msg.idempotency_key,
        to=TO,
        subject="hello\r\nBcc: attacker@evil.test",
        body="x",
    )
    await email.send(evil)
    [mail] = await smtp.wait_for(lambda m: True)
    assert mail.rcpt_tos == [TO] and "Bcc" not in mail.headers


async def test_runs_as_a_process() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goldenhour.dev.smtp_local", "--port", str(port),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert ready == {"event": "ready", "host": "127.0.0.1", "port": port}
        msg = outbound()
        await SmtpEmail("127.0.0.1", port, FROM, tls="off").send(msg)
        record = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
        assert record["subject"] == msg.subject and record["rcpt_tos"] == [TO]
        assert record["message_id"] == message_id_for(msg.idempotency_key)
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_sequential_sends_share_one_connection(smtp: LocalSmtp, email: SmtpEmail) -> None:
    for _ in range(20):
        await email.send(outbound())
    assert len(smtp.messages) == 20
    assert smtp.connections == 1
    await email.close()


async def test_concurrent_sends_open_at_most_max_connections(smtp: LocalSmtp) -> None:
    email = SmtpEmail("127.0.0.1", smtp.port, FROM, tls="off", timeout=5, max_connections=3)
    results = await asyncio.gather(*(email.send(outbound()) for _ in range(30)))
    assert {r.status for r in results} == {"sent"}
    assert len(smtp.messages) == 30
    # Exactly three: fewer would mean the sends were not spread over the connections at all.
    assert smtp.connections == 3
    await email.close()


@pytest.mark.parametrize("client_noticed", [True, False], ids=["noticed", "unnoticed"])
async def test_connection_dropped_by_the_server_is_replaced(
    smtp: LocalSmtp, email: SmtpEmail, client_noticed: bool
) -> None:
    await email.send(outbound())
    if client_noticed:
        await asyncio.to_thread(smtp.stop)
        await asyncio.to_thread(smtp.start)
    else:
        # Blocking the loop keeps the client from seeing the server hang up, so the next
        # send really meets the dead connection (the race a busy dispatcher can lose).
        smtp.stop()
        smtp.start()
    with capture_logs() as logs:
        result = await email.send(outbound())
    assert result.status == "sent"
    # The restarted server keeps its record of mail but counts connections afresh.
    assert len(smtp.messages) == 2 and smtp.connections == 1
    stale = [e for e in logs if e["event"] == "email.stale_connection"]
    assert len(stale) == (0 if client_noticed else 1)
    await email.close()


async def test_connection_idle_too_long_is_not_reused(smtp: LocalSmtp) -> None:
    email = SmtpEmail("127.0.0.1", smtp.port, FROM, tls="off", timeout=5)
    await email.send(outbound())
    await email.send(outbound())
    assert smtp.connections == 1
    # Idle for longer than the limit, however long the sends above took.
    email.idle_s = 0.2
    await asyncio.sleep(0.3)
    await email.send(outbound())
    assert len(smtp.messages) == 3
    assert smtp.connections == 2
    await email.close()


async def test_close_leaves_no_connection_open(smtp: LocalSmtp, email: SmtpEmail) -> None:
    await asyncio.gather(*(email.send(outbound()) for _ in range(8)))
    assert smtp.open_connections == 4  # the default max_connections, kept for reuse
    await email.close()
    await wait_for_matches(lambda: [smtp.open_connections], lambda n: n == 0, 2, 1, "closes")
    # Closed, not broken: the channel connects again when needed.
    await email.send(outbound())
    assert len(smtp.messages) == 9 and smtp.connections == 5
    await email.close()
