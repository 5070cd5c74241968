"""Twilio as an attacker would try it, over the running system: no part starts with an empty
auth token, a system with Twilio switched off refuses every Twilio callback and fails its SMS
for a reason, a neighbour told only by the shared alert cannot acknowledge, wrong codes are
limited per number, a replayed callback has no second effect, a large form is refused unread."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from twilio.request_validator import RequestValidator

from goldenhour.dev.devsystem import TWILIO_FROM, TWILIO_SID, DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.waiting import eventually
from goldenhour.services.ack_codes import PER_NUMBER
from tests.e2e.helpers import fetch, fetchval, place_high_risk_child, report_absence, the_alert

REPO = Path(__file__).resolve().parents[2]
INBOUND = "/api/v1/webhooks/twilio/inbound"
LBH_DUTY = "+447700900001"
LBH_HEAD = "+447700900002"
LBI_DUTY = "+447700900101"
CONTROL_ROOM = "+447700900010"
TOO_MANY = "too many wrong codes"


def _refusal(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="goldenhour-") as scratch:
        config = Path(scratch) / "goldenhour.yaml"
        config.write_text(yaml.safe_dump(directory()[0], sort_keys=False))
        return subprocess.run(
            [sys.executable, "-m", "goldenhour", command],
            cwd=REPO,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")},
                "GOLDENHOUR_CONFIG": str(config),
                "GOLDENHOUR_DATA_DIR": scratch,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.parametrize("command", ["api", "dispatcher", "run"])
def test_no_part_talking_to_twilio_starts_with_an_empty_auth_token(command):
    done = _refusal(
        command,
        {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": "", "TWILIO_FROM_NUMBER": "+4477"},
    )
    assert done.returncode != 0
    assert "TWILIO_AUTH_TOKEN is empty" in done.stderr
    assert "GOLDENHOUR_TWILIO_ENABLED=false" in done.stderr


async def _ack_code(system: DevSystem) -> str:
    return await eventually(
        lambda: fetchval(system, "SELECT ack_code FROM alerts"), 10, "an alert", every=0.1
    )


async def _sms_rows(system: DevSystem) -> list[asyncpg.Record]:
    return await fetch(
        system, "SELECT channel, status, last_error FROM notifications WHERE channel = 'sms'"
    )


async def test_with_twilio_off_a_reply_signed_with_the_empty_key_is_refused(start_system):
    system = await start_system(env={"GOLDENHOUR_TWILIO_ENABLED": "false", "TWILIO_AUTH_TOKEN": ""})
    await place_high_risk_child(system)
    await report_absence(system)
    code = await _ack_code(system)
    url = system.api_url + INBOUND
    form = {"From": LBH_DUTY, "To": TWILIO_FROM, "Body": f"ACK {code}", "MessageSid": "SM1"}
    forged = RequestValidator("").compute_signature(url, form)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, data=form, headers={"X-Twilio-Signature": forged})
    assert r.status_code == 403 and "Twilio is switched off" in r.text, r.text
    assert (await the_alert(system))["status"] == "open"

    # Its SMS fail for a reason at once (so failover and "nobody reached" apply), and the
    # same step's emails still go.
    async def failed() -> list[asyncpg.Record]:
        rows = await _sms_rows(system)
        assert rows and all(r["status"] == "failed" for r in rows), rows
        return rows

    rows = await eventually(failed, 20, "every SMS row failed", every=0.1)
    assert all("Twilio is switched off" in (r["last_error"] or "") for r in rows), rows
    await eventually(lambda: len(system.smtp.messages) >= 3, 15, "the first step's emails")
    assert not system.twilio.messages


async def _reply(system: DevSystem, phone: str, body: str) -> str:
    status, reply = await system.twilio.send_inbound(
        system.api_url + INBOUND, phone, TWILIO_FROM, body
    )
    assert status == 200, reply
    return reply


async def test_only_the_alerts_own_contacts_acknowledge_and_guesses_are_limited(start_system):
    system = await start_system(scale=0.2)
    async with system.client("lbi-dm1") as lbi:
        r = await lbi.post(
            "/subscriptions", json={"deliver": {"contacts": ["lbi-duty"], "channels": ["sms"]}}
        )
        assert r.status_code == 201, r.text
    await place_high_risk_child(system)
    await report_absence(system)
    code = await _ack_code(system)
    await eventually(
        lambda: any(m.to == LBI_DUTY for m in system.twilio.messages), 20, "the shared alert"
    )

    # Islington's duty manager, told only by the shared alert, holds the right code.
    reply = await _reply(system, LBI_DUTY, f"ACK {code}")
    assert "no open alert sent to you" in reply
    assert (await the_alert(system))["status"] == "open"

    # Hackney's head of service guesses: a few wrong codes are answered, then none is checked,
    # not even the right one.
    wrong = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, PER_NUMBER + 2)]
    replies = [await _reply(system, LBH_HEAD, f"ACK {w}") for w in wrong]
    assert all("no open alert sent to you" in r for r in replies[:PER_NUMBER]), replies
    assert TOO_MANY in replies[PER_NUMBER] and "console" in replies[PER_NUMBER]
    assert TOO_MANY in await _reply(system, LBH_HEAD, f"ACK {code}")
    assert (await the_alert(system))["status"] == "open"

    # The control room, told by the alert's first step, still acknowledges.
    assert "acknowledged case" in await _reply(system, CONTROL_ROOM, f"ACK {code}")
    alert = await the_alert(system)
    assert alert["status"] == "acknowledged"
    assert [a["contact_id"] for a in alert["acknowledgements"]] == ["mps-cr"]
    assert len(code) >= 6 and code.isdigit()


async def _raw_post(system: DevSystem, head: str, body: bytes) -> int:
    """The status code answered to a request written byte by byte, read before the rest of a
    declared body is sent (a server that waited for it would never answer)."""
    port = int(system.api_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        async with asyncio.timeout(20):
            status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


def _head(declared: str, signature: str | None) -> str:
    lines = [
        f"POST {INBOUND} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/x-www-form-urlencoded",
        declared,
    ]
    if signature is not None:
        lines.append(f"X-Twilio-Signature: {signature}")
    return "\r\n".join(lines) + "\r\n\r\n"


async def test_a_replayed_callback_has_no_second_effect_and_large_forms_are_not_read(
    start_system,
):
    system = await start_system()
    await place_high_risk_child(system)
    await report_absence(system)
    code = await _ack_code(system)
    url = system.api_url + INBOUND
    form = {"From": LBH_DUTY, "To": TWILIO_FROM, "Body": f"ACK {code}", "MessageSid": "SM1"}
    headers = {
        "X-Twilio-Signature": RequestValidator(system.twilio.auth_token).compute_signature(
            url, form
        )
    }
    async with httpx.AsyncClient() as c:
        first = await c.post(url, data=form, headers=headers)
        replays = [await c.post(url, data=form, headers=headers) for _ in range(3)]
    assert first.status_code == 200 and "acknowledged case" in first.text
    for replay in replays:
        # Answered (Twilio retries what fails) with no SMS back and nothing done.
        assert replay.status_code == 200
        assert "<Message>" not in replay.text
    sql = "SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledged'"
    assert await fetchval(system, sql) == 1

    # A form larger than any of Twilio's: refused from its length, or as it is read, before
    # a byte of it is parsed; one with no signature at all, before it is read.
    assert await _raw_post(system, _head("Content-Length: 40000", "c2ln"), b"From=%2B44") == 413
    assert await _raw_post(system, _head("Content-Length: 40000", None), b"From=%2B44") == 403
    big = {"From": LBH_DUTY, "Body": "x" * 20_000}
    signed = RequestValidator(system.twilio.auth_token).compute_signature(url, big)
    payload = str(httpx.QueryParams(big)).encode()
    chunked = b"".join(
        f"{len(payload[i : i + 4096]):x}\r\n".encode() + payload[i : i + 4096] + b"\r\n"
        for i in range(0, len(payload), 4096)
    )
    status = await _raw_post(
        system, _head("Transfer-Encoding: chunked", signed), chunked + b"0\r\n\r\n"
    )
    assert status == 413
