"""A streams worker whose host clock is 70 s off fires a due step neither early nor late: every
due time is compared with the database's clock, not the worker's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from goldenhour.dev.faketime import skewed
from goldenhour.dev.waiting import eventually
from tests.integration.streams_worker import fetch, fetchval, prepare, streams_worker

CHILD = "LBH-2026-0777"
DUE_IN = timedelta(seconds=4)


@pytest.mark.parametrize("skew_s", [70, -70])
async def test_a_skewed_worker_fires_on_the_databases_time(
    stack, database_url, tmp_path, skew_s
) -> None:
    await prepare(database_url, [CHILD])
    async with streams_worker(
        stack.kafka_bootstrap, database_url, tmp_path, env=skewed({}, skew_s)
    ):
        due = await fetchval(database_url, "SELECT now()") + DUE_IN
        alert_id = uuid.uuid4()
        await fetchval(
            database_url,
            "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
            " care_home, local_authority, ack_code, opened_at, next_due_at)"
            " VALUES ($1, $2, 'missing', 'open', 'high', 'high', $3, 'OAK', 'LBH', '7777',"
            " now(), $3)",
            alert_id,
            CHILD,
            due,
        )
        # Ahead by 70 s, a worker reading its own clock fired this at once; behind by 70 s,
        # a minute late. Half-way to the due time, nothing has fired.
        await asyncio.sleep(DUE_IN.total_seconds() / 2)
        assert await fetchval(database_url, "SELECT count(*) FROM alert_steps") == 0

        async def decided() -> list | None:
            rows = await fetch(
                database_url, "SELECT * FROM alert_steps WHERE alert_id = $1", alert_id
            )
            return rows or None

        steps = await eventually(decided, 30, "the first step decided", retry_errors=True)
        notes = await fetch(
            database_url, "SELECT * FROM notifications WHERE alert_id = $1", alert_id
        )
    assert [s["status"] for s in steps] == ["fired"]
    assert steps[0]["decided_at"] >= due
    # Not late either: well inside the 70 s the skew would have cost (a loaded machine may take
    # a few seconds to get round to it, never a minute).
    assert steps[0]["decided_at"] - due < timedelta(seconds=20)
    assert notes and all(due <= n["created_at"] < due + timedelta(seconds=20) for n in notes)
    assert all(n["next_attempt_at"] < due + timedelta(seconds=20) for n in notes)
