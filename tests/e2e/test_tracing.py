"""One report followed across the parts by its correlation id: the caller's `X-Request-Id` is
answered back, kept on the outbox row, carried in the Kafka record's headers to the streams
worker, kept on the alert it opened and on every message row, and bound in the log lines of
the API, the streams worker and the dispatcher, the provider call included."""

from __future__ import annotations

import json
from pathlib import Path

from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import CHILD, absence, fetch, fetchval, place_high_risk_child, step_keys

REQUEST_ID = "cr-2026-12-03-hackney-0042"


def lines_with(log: Path, correlation_id: str) -> list[dict]:
    """The JSON log lines of one part that carry the id."""
    found = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # not one of ours (a library's plain line)
            continue
        if isinstance(entry, dict) and entry.get("correlation_id") == correlation_id:
            found.append(entry)
    return found


async def test_one_report_is_followed_from_the_request_to_the_provider(start_system, tmp_path):
    # A policy minute lasts 0.2 s: the clock fires the second step seconds later.
    system = await start_system(scale=0.2, log_dir=tmp_path)
    await place_high_risk_child(system)
    async with system.client("oak-staff1") as home:
        answer = await home.post("/events", json=absence(), headers={"X-Request-Id": REQUEST_ID})
        assert answer.status_code == 202, answer.text
        assert answer.headers["x-request-id"] == REQUEST_ID
        # An id that could mislead a reader of the logs is not taken: the answer names the
        # one used instead.
        for hostile in ('x" event="alert.acknowledged', "z" * 65):
            r = await home.get("/children", headers={"X-Request-Id": hostile})
            assert r.headers["x-request-id"] != hostile
            assert len(r.headers["x-request-id"]) == 32
    event_id = answer.json()["event_id"]

    first, second = step_keys(system)[:2]

    async def two_steps_sent() -> list | None:
        rows = await fetch(
            system,
            "SELECT step_key, correlation_id, status FROM notifications WHERE child_id = $1"
            " AND step_key = ANY($2::text[])",
            CHILD,
            [first, second],
        )
        sent = [r for r in rows if r["status"] in {"sent", "delivered"}]
        return rows if {r["step_key"] for r in sent} == {first, second} else None

    # The second step is fired by the clock, long after the request ended, under its id.
    notes = await eventually(two_steps_sent, 30, "the first two steps sent")
    assert {r["correlation_id"] for r in notes} == {REQUEST_ID}
    assert (
        await fetchval(
            system, "SELECT correlation_id FROM outbox WHERE event_id = $1::uuid", event_id
        )
        == REQUEST_ID
    )
    assert (
        await fetchval(system, "SELECT correlation_id FROM alerts WHERE child_id = $1", CHILD)
        == REQUEST_ID
    )

    api = lines_with(tmp_path / "api.log", REQUEST_ID)
    streams = lines_with(tmp_path / "streams.log", REQUEST_ID)
    dispatcher = lines_with(tmp_path / "dispatcher.log", REQUEST_ID)
    assert any(e.get("event_id") == event_id for e in api), api
    assert any(e["event"] == "alert.raised" for e in streams), streams
    sent = [e for e in dispatcher if e["event"] == "notification.sent"]
    assert {e["notification_id"] for e in sent} >= {
        str(r["notification_id"])
        for r in await fetch(
            system,
            "SELECT notification_id FROM notifications WHERE child_id = $1 AND channel = 'sms'",
            CHILD,
        )
    }
