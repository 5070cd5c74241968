"""`goldenhour chaos --quick`: the whole system under seeded faults keeps every promise; the
harness's checks, over a real database, report each failure they exist to catch; and the local
SMTP server refuses and black-holes connections when told to."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from goldenhour.chaos import evidence, faults, invariants
from goldenhour.dev.servers import free_port
from goldenhour.dev.smtp_local import LocalSmtp, serve_control
from tests.integration.chaos_run import run_chaos


async def _alert(conn: asyncpg.Connection, due_in_s: float, child: str) -> uuid.UUID:
    alert_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " local_authority, ack_code, opened_at, next_due_at) VALUES ($1, $4,"
        " 'missing', 'open', 'high', 'high', now(), 'LBH', $2, now(),"
        " now() + make_interval(secs => $3))",
        alert_id,
        uuid.uuid4().hex[:6],
        due_in_s,
        child,
    )
    return alert_id


OWED = {("high", "s0"): {("mps-cr", "sms"), ("mps-cr", "email")}}


async def _note(
    conn: asyncpg.Connection,
    alert_id: uuid.UUID,
    contact: str,
    channel: str,
    status: str = "sent",
    step: str = "s0",
) -> str:
    nid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
        " org_code, channel, address, body, status, next_attempt_at, created_at)"
        " VALUES ($1, $2, 'LBH-CX-0001', $5, $3, 'MPS', $4, 'x', 'body', $6, now(), now())",
        nid,
        alert_id,
        contact,
        channel,
        step,
        status,
    )
    return str(nid)


async def test_the_checks_report_a_lost_event_an_unsent_message_and_an_undecided_step(
    migrated_db: str,
):
    conn = await asyncpg.connect(migrated_db)
    try:
        accepted = [str(uuid.uuid4()) for _ in range(3)]
        for e in accepted:
            await conn.execute(
                "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
                evidence.CONSUMER,
                uuid.UUID(e),
            )
        marker = str(uuid.uuid4())
        ev = await evidence.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == []
        assert ev.poison_found == {}

        # Deleting an applied event's row by hand is what a lost event looks like.
        await conn.execute(
            "DELETE FROM processed_events WHERE event_id = $1", uuid.UUID(accepted[1])
        )
        ev = await evidence.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == [accepted[1]]

        # Dead-lettered, it is accounted for; and a poison record is found by its bytes.
        await conn.execute(
            "INSERT INTO dead_letters (consumer, topic, raw, event_id, reason, error)"
            " VALUES ('intake', 't', $1, $2, 'schema', 'schema_version 2')",
            f'{{"event": {{"event_id": "{marker}"'.encode(),
            uuid.UUID(accepted[1]),
        )
        ev = await evidence.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == []
        assert set(ev.poison_found) == {marker}

        # A message marked sent that the provider never received is never sent.
        alert_id = await _alert(conn, due_in_s=60, child="LBH-CX-0001")
        sms, mail = (
            await _note(conn, alert_id, "mps-cr", "sms"),
            await _note(conn, alert_id, "mps-cr", "email"),
        )
        ev = await evidence.collect(conn, [])
        unsent = invariants.never_sent(ev.notes, ev.steps, Counter({sms: 1}), Counter(), OWED)
        assert [(u.key[2], u.key[3]) for u in unsent] == [("mps-cr", "email")]
        mail_id = next(n.message_id for n in ev.notes if n.notification_id == mail)
        sent = Counter({mail_id: 1})
        assert invariants.never_sent(ev.notes, ev.steps, Counter({sms: 1}), sent, OWED) == []
        assert invariants.sent_twice(ev.notes, Counter({sms: 2})) == [
            ((str(alert_id), "s0", "mps-cr", "sms"), 2)
        ]

        # A call placed twice is counted by what the provider received for its row.
        call = await _note(conn, alert_id, "mps-cr", "voice")
        ev = await evidence.collect(conn, [])
        assert invariants.calls_twice(ev.notes, Counter({call: 2, sms: 2})) == [
            ((str(alert_id), "s0", "mps-cr", "voice"), 2)
        ]

        # A message failed for good with nobody told is reported until the dispatcher marks
        # the duty manager told, or an unreachable notice for the alert exists.
        failed = await _note(conn, alert_id, "lbh-head", "sms", status="failed", step="s1")
        ev = await evidence.collect(conn, [])
        assert [n.notification_id for n in invariants.failed_untold(ev.notes)] == [failed]
        await conn.execute(
            "UPDATE notifications SET unreachable_told_at = now() WHERE notification_id = $1",
            uuid.UUID(failed),
        )
        ev = await evidence.collect(conn, [])
        assert invariants.failed_untold(ev.notes) == []
        told = next(n for n in ev.notes if n.notification_id == failed)
        assert told.unreachable_told_at is not None and told.created_at > 0

        # A timer well past due and undecided is reported; one in the future is not.
        assert ev.overdue == []
        late = await _alert(conn, due_in_s=-30, child="LBH-CX-0002")
        ev = await evidence.collect(conn, [])
        assert [a for a, _, _ in ev.overdue] == [str(late)]
    finally:
        await conn.close()


@pytest.mark.timeout(900)
def test_a_quick_chaos_run_keeps_every_promise(tmp_path: Path):
    run = run_chaos(["--quick"], tmp_path / "chaos.json", timeout_s=780)
    table, result = run.table, run.result
    assert result["invariants"] == {name: 0 for name in result["invariants"]}, table
    assert set(result["invariants"]) >= {
        "accepted_never_applied_nor_dead_lettered",
        "due_messages_never_sent",
        "sms_sent_twice_for_one_step",
    }
    # The new promises are checked, each a count that fails the run.
    assert set(result["invariants"]) >= {
        "calls_placed_twice_for_one_step",
        "failed_messages_nobody_told",
    }
    # Lateness is measured and printed, never asserted: speed is the benchmark's.
    assert set(result["timeliness"]) == {
        "due_steps_decided_over_2s_late",
        "sms_over_2s_late_outside_twilio_and_infra_faults",
    }
    # The run did what it claims: every kind of fault, poison and a Twilio outage included,
    # each carried out, with the two dispatchers' clocks 70 s either side of the host's.
    done = [f for f in result["faults"] if "not done" not in f["label"]]
    assert {f["kind"] for f in done} >= {*faults.INFRA_KINDS, faults.TWILIO_500}, table
    assert sorted(result["figures"]["dispatcher_clock_skew_s"].values()) == [-70.0, 70.0]
    assert result["figures"]["poison_injected"] == 3, table
    assert result["figures"]["events_accepted"] >= 200 * 5, table
    assert result["figures"]["sms_received"] > 0, table
    assert run.returncode == 0, table


def _say_hello(port: int, timeout: float = 2.0) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        client.sendmail("a@x.example", ["b@y.example"], "Subject: t\r\nMessage-ID: <t@x>\r\n\r\nhi")
    return "sent"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=2)


async def test_the_local_smtp_server_refuses_or_holds_connections_when_told_over_its_port():
    server = LocalSmtp()
    server.start()
    control_port = free_port()
    control = serve_control(server, "127.0.0.1", control_port)
    url = f"http://127.0.0.1:{control_port}/mode"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            assert await asyncio.to_thread(_say_hello, server.port) == "sent"

            assert (await client.post(url, json={"mode": "refuse"})).json() == {"mode": "refuse"}
            with pytest.raises(ConnectionRefusedError):
                await asyncio.to_thread(_connect, server.port)

            assert (await client.post(url, json={"mode": "blackhole"})).status_code == 200
            # The connection is accepted, and then not a word: no greeting within the timeout.
            sock = await asyncio.to_thread(_connect, server.port)
            started = time.monotonic()
            with sock, pytest.raises(TimeoutError):
                sock.settimeout(1.0)
                await asyncio.to_thread(sock.recv, 1)
            assert time.monotonic() - started >= 0.9
            with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)):
                await asyncio.to_thread(_say_hello, server.port, 1.0)

            refused = await client.post(url, json={"mode": "flood"})
            assert refused.status_code == 422 and "flood" in refused.text
            assert (await client.get(url)).json() == {"mode": "blackhole"}

            await client.post(url, json={"mode": "normal"})
            assert await asyncio.to_thread(_say_hello, server.port) == "sent"
            assert [m.message_id for m in server.messages] == ["<t@x>", "<t@x>"]
    finally:
        control.shutdown()
        server.stop()
