"""Webhook delivery against server-side request forgery, over real HTTP to a local receiver.

A subscriber controls the DNS of its webhook's host: it can answer a public address when the
subscription is checked and 127.0.0.1 when the alert is delivered (DNS rebinding). The channel
resolves once per connection through its `resolve` argument, vets every address with the rule
subscriptions are made under, and connects to the vetted address; these tests answer for that
resolver and keep a real receiver on 127.0.0.1 that must get nothing it should not.

Also here: what the receiver answers never comes back beyond its status code, and neither our
log lines nor httpx's carry a webhook URL's path (it may hold the receiver's token).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from goldenhour.dev.webhook_local import LocalWebhookReceiver
from goldenhour.infra.webhook_urls import Resolver, check_webhook_url
from goldenhour.notifiers.base import OutboundMessage, PermanentSendError, RetryableSendError
from goldenhour.notifiers.webhook import WebhookChannel

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "s5rf" * 8
PUBLIC = "93.184.216.34"
LEAK = "internal-admin: AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class ScriptedDns:
    """Answers each lookup with the next of `answers` (the last one repeats); counts lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return list(self.answers[min(len(self.lookups), len(self.answers)) - 1])


def outbound(url: str) -> OutboundMessage:
    return OutboundMessage(
        notification_id=str(uuid.uuid4()),
        idempotency_key=f"{uuid.uuid4()}:share:sub-1:webhook",
        to=url,
        subject="",
        body=json.dumps({"msg_type": "Alert", "case_reference": "LBH-2024-0042"}),
        signing_secret=SECRET,
    )


@pytest.fixture
async def receiver(
    start_webhook_receiver: Callable[..., Awaitable[LocalWebhookReceiver]],
) -> LocalWebhookReceiver:
    return await start_webhook_receiver(SECRET)


async def send_with(resolve: Resolver, url: str, allow_private: bool = False):
    """One delivery through a channel of its own that resolves with `resolve`."""
    channel = WebhookChannel(timeout=5, allow_private=allow_private, resolve=resolve)
    try:
        return await channel.send(outbound(url))
    finally:
        await channel.close()


async def test_a_name_rebound_to_loopback_after_subscribing_is_refused_at_delivery(receiver):
    # `localhost` really is 127.0.0.1: a channel that looked the name up again itself, past
    # the vetted answer, would reach the receiver.
    url = f"http://localhost:{receiver.port}/hook"
    dns = ScriptedDns([PUBLIC], ["127.0.0.1"])
    await check_webhook_url(url, allow_private=False, resolve=dns)  # the subscription is made
    with pytest.raises(PermanentSendError) as refused:
        await send_with(dns, url)
    text = str(refused.value)
    assert "resolved to a loopback address" in text
    assert text.startswith(f"webhook http://localhost:{receiver.port}")
    assert dns.lookups == [("localhost", receiver.port)] * 2
    assert receiver.received == []


@pytest.mark.parametrize(
    "answer, reason",
    [
        (["127.0.0.1"], "loopback"),
        ([PUBLIC, "127.0.0.1"], "loopback"),  # any private address refuses the whole name
        (["169.254.169.254"], "link-local"),
        (["10.0.0.7"], "private"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["0.0.0.0"], "unspecified"),
    ],
)
async def test_every_delivery_refuses_a_non_public_answer(receiver, answer, reason):
    dns = ScriptedDns(answer)
    with pytest.raises(PermanentSendError, match=f"resolved to a {reason} address"):
        await send_with(dns, f"http://hooks.example:{receiver.port}/hook")
    assert receiver.received == []


async def test_with_private_allowed_the_connection_goes_to_the_address_resolved_once(receiver):
    # No real resolver knows hooks.invalid: the POST can only have gone to the scripted answer,
    # and the Host header still names the subscriber's host.
    dns = ScriptedDns(["127.0.0.1"])
    url = f"http://hooks.invalid:{receiver.port}/lbi/alerts"
    result = await send_with(dns, url, allow_private=True)
    assert result.status == "sent"
    [hook] = await receiver.wait_for(lambda h: True, timeout=5)
    assert hook.path == "/lbi/alerts" and hook.verified
    assert hook.headers["Host"] == f"hooks.invalid:{receiver.port}"
    assert dns.lookups == [("hooks.invalid", receiver.port)]


async def test_each_delivery_resolves_and_vets_again(receiver):
    dns = ScriptedDns(["127.0.0.1"], ["10.0.0.7"])
    channel = WebhookChannel(timeout=5, allow_private=False, resolve=dns)
    url = f"http://hooks.example:{receiver.port}/hook"
    try:
        for reason in ("loopback", "private"):
            with pytest.raises(PermanentSendError, match=f"resolved to a {reason} address"):
                await channel.send(outbound(url))
    finally:
        await channel.close()
    assert len(dns.lookups) == 2 and receiver.received == []


async def test_a_host_that_does_not_resolve_at_delivery_is_retried(receiver):
    async def no_answer(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(RetryableSendError, match="cannot resolve host 'hooks.example'"):
        await send_with(no_answer, f"http://hooks.example:{receiver.port}/hook", True)
    assert receiver.received == []


@pytest.mark.parametrize("status", [403, 404, 500])
async def test_the_receivers_answer_is_never_passed_on_beyond_its_status(receiver, status):
    receiver.fail_next(1, status, body=LEAK)
    with pytest.raises((PermanentSendError, RetryableSendError)) as failed:
        await send_with(ScriptedDns(["127.0.0.1"]), receiver.url("/hook"), allow_private=True)
    [hook] = receiver.received
    assert hook.status == status  # it did answer, with the secret in its body
    text = str(failed.value)
    assert f"HTTP {status}" in text
    assert "AWS_SECRET" not in text and "internal-admin" not in text


def make_certificates(where: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for `name`: (ca, cert, key)."""
    ca, ca_key = where / "ca.pem", where / "ca.key"
    cert, key, csr, ext = (where / f for f in ("leaf.pem", "leaf.key", "leaf.csr", "leaf.ext"))
    ext.write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
        + ["-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
async def tls_receiver(
    tmp_path: Path, start_webhook_receiver: Callable[..., Awaitable[LocalWebhookReceiver]]
) -> tuple[LocalWebhookReceiver, Path]:
    """A receiver serving HTTPS with a certificate for hooks.invalid, and the CA that signed it."""
    ca, cert, key = make_certificates(tmp_path, "hooks.invalid")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    return await start_webhook_receiver(SECRET, ssl_context=server_side), ca


async def test_tls_checks_the_certificate_for_the_name_not_the_address(tls_receiver):
    receiver, ca = tls_receiver
    trusted = ssl.create_default_context(cafile=str(ca))
    dns = ScriptedDns(["127.0.0.1"])
    channel = WebhookChannel(timeout=5, allow_private=True, resolve=dns, ssl_context=trusted)
    try:
        # The certificate names hooks.invalid, not 127.0.0.1: it verifies only because the
        # name, not the address connected to, is the TLS server name.
        result = await channel.send(outbound(f"https://hooks.invalid:{receiver.port}/hook"))
        assert result.status == "sent"
        with pytest.raises(RetryableSendError, match="CERTIFICATE_VERIFY_FAILED"):
            await channel.send(outbound(f"https://other.invalid:{receiver.port}/hook"))
    finally:
        await channel.close()
    [hook] = [h for h in receiver.received if h.status == 200]
    assert hook.headers["Host"] == f"hooks.invalid:{receiver.port}"


LOGGED_DELIVERY = """
import asyncio, json, sys, uuid
from goldenhour.infra import logs
from goldenhour.dev.webhook_local import LocalWebhookReceiver
from goldenhour.notifiers.base import OutboundMessage, PermanentSendError
from goldenhour.notifiers.webhook import WebhookChannel

SECRET, LEAK = sys.argv[1], sys.argv[2]

async def main():
    logs.configure("info")
    receiver = LocalWebhookReceiver()
    receiver.set_secret(SECRET)
    await receiver.start()
    channel = WebhookChannel(timeout=5, allow_private=True)
    try:
        for fail in (False, True):
            if fail:
                receiver.fail_next(1, 403, body=LEAK)
            msg = OutboundMessage(
                notification_id=str(uuid.uuid4()),
                idempotency_key="k",
                to=receiver.url("/tok-Zq9Xv3/alerts?key=qs-Pm4Lr8"),
                subject="",
                body=json.dumps({"msg_type": "Alert"}),
                signing_secret=SECRET,
            )
            try:
                await channel.send(msg)
            except PermanentSendError:
                pass
    finally:
        await channel.close()
        await receiver.stop()
    print(receiver.port)

asyncio.run(main())
"""


def test_logs_name_the_host_only_and_nothing_of_the_answer():
    # A process of its own: logging is configured once per process, as every part does.
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOGGED_DELIVERY), SECRET, LEAK],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    port = done.stdout.strip()
    # The local receiver stands for the subscriber's side: its own lines are not ours.
    sender = [line for line in done.stderr.splitlines() if '"webhook_local.' not in line]
    ours = {
        entry["event"]: entry
        for entry in (json.loads(line) for line in sender if line.startswith("{"))
        if entry["event"].startswith("webhook.")
    }
    assert ours["webhook.delivered"]["target"] == f"http://127.0.0.1:{port}"
    assert ours["webhook.refused"]["status"] == 403
    text = "\n".join(sender)
    assert "tok-Zq9Xv3" not in text and "qs-Pm4Lr8" not in text
    assert "AWS_SECRET" not in text and "internal-admin" not in text
    assert "HTTP Request" not in text  # httpx's own INFO line quotes the whole URL
