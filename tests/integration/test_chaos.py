"""`goldenhour chaos --quick`: the whole system under seeded faults keeps every promise; and the
harness's checks, over a real database, report each failure they exist to catch."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from chaos import invariants

REPO = Path(__file__).resolve().parents[2]


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


async def _note(conn: asyncpg.Connection, alert_id: uuid.UUID, contact: str, channel: str) -> str:
    nid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
        " org_code, channel, address, body, status, next_attempt_at, created_at)"
        " VALUES ($1, $2, 'LBH-CX-0001', 's0', $3, 'MPS', $4, 'x', 'body', 'sent', now(), now())",
        nid,
        alert_id,
        contact,
        channel,
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
                invariants.CONSUMER,
                uuid.UUID(e),
            )
        marker = str(uuid.uuid4())
        ev = await invariants.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == []
        assert ev.poison_found == {}

        # Deleting an applied event's row by hand is what a lost event looks like.
        await conn.execute(
            "DELETE FROM processed_events WHERE event_id = $1", uuid.UUID(accepted[1])
        )
        ev = await invariants.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == [accepted[1]]

        # Dead-lettered, it is accounted for; and a poison record is found by its bytes.
        await conn.execute(
            "INSERT INTO dead_letters (consumer, topic, raw, event_id, reason, error)"
            " VALUES ('intake', 't', $1, $2, 'schema', 'schema_version 2')",
            f'{{"event": {{"event_id": "{marker}"'.encode(),
            uuid.UUID(accepted[1]),
        )
        ev = await invariants.collect(conn, [marker])
        assert invariants.lost_events(accepted, ev.applied, ev.dead_events) == []
        assert set(ev.poison_found) == {marker}

        # A message marked sent that the provider never received is never sent.
        alert_id = await _alert(conn, due_in_s=60, child="LBH-CX-0001")
        sms, mail = (
            await _note(conn, alert_id, "mps-cr", "sms"),
            await _note(conn, alert_id, "mps-cr", "email"),
        )
        ev = await invariants.collect(conn, [])
        unsent = invariants.never_sent(ev.notes, ev.steps, Counter({sms: 1}), Counter())
        assert [(u.key[2], u.key[3]) for u in unsent] == [("mps-cr", "email")]
        mail_id = next(n.message_id for n in ev.notes if n.notification_id == mail)
        assert (
            invariants.never_sent(ev.notes, ev.steps, Counter({sms: 1}), Counter({mail_id: 1}))
            == []
        )
        assert invariants.sent_twice(ev.notes, Counter({sms: 2})) == [
            ((str(alert_id), "s0", "mps-cr", "sms"), 2)
        ]

        # A timer well past due and undecided is reported; one in the future is not.
        assert ev.overdue == []
        late = await _alert(conn, due_in_s=-30, child="LBH-CX-0002")
        ev = await invariants.collect(conn, [])
        assert [a for a, _, _ in ev.overdue] == [str(late)]
    finally:
        await conn.close()


@pytest.mark.timeout(900)
def test_a_quick_chaos_run_keeps_every_promise(tmp_path: Path):
    out = tmp_path / "chaos.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "chaos", "--quick", "--json", str(out)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=780)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the harness stops every process it started on SIGTERM
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    table = stdout.split("\n{", 1)[0][-6000:]
    print(table)  # shown with -s, and on a failure
    assert out.exists(), table
    result = json.loads(out.read_text())
    assert result["invariants"] == {name: 0 for name in result["invariants"]}, table
    assert set(result["invariants"]) >= {
        "accepted_never_applied_nor_dead_lettered",
        "due_messages_never_sent",
        "sms_sent_twice_for_one_step",
    }
    # The run did what it claims: every kind of fault, poison included, and a real workload.
    assert {f["kind"] for f in result["faults"]} >= {
        "kill_part",
        "broker_pause",
        "broker_restart",
        "postgres_restart",
        "postgres_pause",
        "poison",
    }, table
    assert result["figures"]["poison_injected"] == 3, table
    assert result["figures"]["events_accepted"] >= 200 * 5, table
    assert result["figures"]["sms_received"] > 0, table
    assert proc.returncode == 0, table
