"""Dead letters end to end: an absence whose handler fails every time and a record that does not
parse are set aside; `goldenhour dlq` lists and shows them; once the cause is mended, `replay`
applies the absence once through the normal path, and a second replay does nothing; a record that
will never apply is discarded with a reason."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import (
    CHILD,
    execute,
    fetch,
    fetchval,
    place_high_risk_child,
    produce,
    report_absence,
    step_keys,
)

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}

# A real, deterministic failure of the handler for this child: its alerts are refused.
REFUSE_ALERTS = f"""
CREATE FUNCTION refuse_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.child_id = '{CHILD}' THEN
        RAISE EXCEPTION 'alerts for % are refused', NEW.child_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_alerts BEFORE INSERT ON alerts FOR EACH ROW
    EXECUTE FUNCTION refuse_alerts();
"""


async def dlq(system: DevSystem, *args: str) -> subprocess.CompletedProcess:
    """`goldenhour dlq …` as an operator runs it, against the running system."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "goldenhour", "dlq", *args],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def letters(system: DevSystem, status: str = "dead") -> list:
    return await fetch(system, "SELECT * FROM dead_letters WHERE status = $1 ORDER BY id", status)


async def test_dead_letters_listed_shown_and_replayed_once(start_system):
    system = await start_system(scale=0.2)
    await place_high_risk_child(system)
    await execute(system, REFUSE_ALERTS)

    answer = await report_absence(system)  # accepted: 202
    event_id = uuid.UUID(answer["event_id"])
    topic = f"{system.env['GOLDENHOUR_TOPIC_PREFIX']}.intake.v1"
    await produce(system.kafka_bootstrap, topic, [(b"LBH-2026-9999", b"{definitely not json")])

    async def two_letters() -> list | None:
        rows = await letters(system)
        return rows if len(rows) == 2 else None

    rows = await eventually(two_letters, 30, "two dead letters")
    by_reason = {r["reason"]: r for r in rows}
    assert set(by_reason) == {"handler", "parse"}
    handler = by_reason["handler"]
    assert handler["event_id"] == event_id and handler["child_id"] == CHILD
    assert "alerts for LBH-2026-0042 are refused" in handler["error"]
    assert await fetchval(system, "SELECT count(*) FROM alerts") == 0

    listed = await dlq(system, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "failed_at", "consumer", "reason", "case", "event", "error"]
    handler_line = next(line for line in lines if line.startswith(f"{handler['id']} "))
    assert "handler" in handler_line and CHILD in handler_line and str(event_id) in handler_line
    assert any(line.startswith(f"{by_reason['parse']['id']} ") for line in lines)

    shown = await dlq(system, "show", str(handler["id"]))
    assert shown.returncode == 0, shown.stderr
    assert "alerts for LBH-2026-0042 are refused" in shown.stdout
    assert f'"event_id": "{event_id}"' in shown.stdout  # the raw record, as readable JSON
    parse_shown = await dlq(system, "show", str(by_reason["parse"]["id"]))
    assert "{definitely not json" in parse_shown.stdout

    unknown = await dlq(system, "show", "999999")
    assert unknown.returncode == 1 and "no dead letter 999999" in unknown.stderr

    # Mended: the refusal is dropped, and the letter replayed through the normal path.
    await execute(system, "DROP TRIGGER refuse_alerts ON alerts")
    replayed = await dlq(system, "replay", str(handler["id"]))
    assert replayed.returncode == 0, replayed.stderr
    await eventually(lambda: {m.to for m in system.twilio.messages} >= STEP0, 20, "first wave")

    async def applied() -> bool:
        return bool(
            await fetchval(
                system, "SELECT true FROM processed_events WHERE event_id = $1", event_id
            )
        )

    await eventually(applied, 20, "the replayed absence applied")
    assert await fetchval(system, "SELECT count(*) FROM alerts") == 1
    letter = await fetch(system, "SELECT * FROM dead_letters WHERE id = $1", handler["id"])
    assert letter[0]["status"] == "replayed" and letter[0]["replayed_by"]
    assert (
        await fetchval(
            system, "SELECT count(*) FROM audit_log WHERE action = 'event.dead_letter_replayed'"
        )
        == 1
    )

    # A second replay is refused and writes nothing.
    outbox_before = await fetchval(system, "SELECT count(*) FROM outbox")
    again = await dlq(system, "replay", str(handler["id"]))
    assert again.returncode == 1 and "already replayed" in again.stderr
    assert await fetchval(system, "SELECT count(*) FROM outbox") == outbox_before
    missing = await dlq(system, "replay", "999999")
    assert missing.returncode == 1 and "no such dead letter" in missing.stderr

    # Replaying the record that never parses brings it back as a new dead letter.
    everything = await dlq(system, "replay", "--all")
    assert everything.returncode == 0, everything.stderr

    async def back_again() -> list | None:
        rows = await letters(system)
        return rows if rows and rows[0]["id"] > by_reason["parse"]["id"] else None

    back = await eventually(back_again, 30, "the unparsable record dead-lettered again")
    assert [r["reason"] for r in back] == ["parse"]
    assert bytes(back[0]["raw"]) == b"{definitely not json"

    # It will never parse: discarded with a reason, it leaves the open list and stays on record.
    vague = await dlq(system, "discard", str(back[0]["id"]), "--reason", "junk")
    assert vague.returncode == 1 and "--reason" in vague.stderr
    why = "a supplier's test record, never a report"
    discarded = await dlq(system, "discard", str(back[0]["id"]), "--reason", why)
    assert discarded.returncode == 0, discarded.stderr
    assert await letters(system) == []
    assert "no dead letters" in (await dlq(system, "list")).stdout
    kept = await dlq(system, "show", str(back[0]["id"]))
    assert "discarded" in kept.stdout and why in kept.stdout

    # Once: each first-step SMS row reached the provider exactly once.
    s0 = {
        str(r["notification_id"])
        for r in await fetch(
            system,
            "SELECT notification_id FROM notifications WHERE step_key = $1 AND channel = 'sms'",
            step_keys(system)[0],
        )
    }
    sent = Counter(
        parse_qs(urlsplit(m.status_callback or "").query).get("n", [""])[0]
        for m in system.twilio.messages
    )
    assert len(s0) == 3 and all(sent[n] == 1 for n in s0), sent
