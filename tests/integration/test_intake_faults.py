"""The intake agent of a real streams worker process under faults: poison in a batch, and the
database going away with events in flight. Records are written straight to the intake topic."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER
from tests.integration.streams_worker import (
    absence,
    fetch,
    fetchval,
    located,
    prepare,
    produce,
    streams_worker,
)

POISONED = "LBH-2026-0101"
VALID = "LBH-2026-0102"


async def applied(dsn: str, event_id: uuid.UUID) -> bool:
    return bool(
        await fetchval(
            dsn,
            "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2",
            CONSUMER,
            event_id,
        )
    )


async def test_two_poison_records_and_a_valid_one_in_one_batch(stack, database_url, tmp_path):
    await prepare(database_url, [POISONED, VALID])
    bad_json = b'{"event": {"event_id": "not even closed"'
    schema_id, good_bytes = absence(POISONED)
    doc = json.loads(good_bytes)
    doc["event"]["schema_version"] = 2
    schema_two = json.dumps(doc).encode()
    valid_id, valid = absence(VALID)

    async with streams_worker(stack.kafka_bootstrap, database_url, tmp_path) as worker:
        # One partition, one write: the worker takes the three in one batch.
        await produce(
            stack.kafka_bootstrap,
            worker.topics.intake,
            [(b"junk", bad_json), (POISONED.encode(), schema_two), (VALID.encode(), valid)],
            partition=0,
        )
        await eventually(
            lambda: applied(database_url, valid_id),
            30,
            "the valid absence applied",
            retry_errors=True,
        )
        alert = await fetchval(
            database_url, "SELECT count(*) FROM alerts WHERE child_id = $1", VALID
        )
        assert alert == 1
        letters = await eventually(
            lambda: _letters(database_url, 2), 30, "two dead letters", retry_errors=True
        )
        by_reason = {r["reason"]: r for r in letters}
        assert set(by_reason) == {"parse", "schema"}
        assert bytes(by_reason["parse"]["raw"]) == bad_json
        assert bytes(by_reason["schema"]["raw"]) == schema_two
        assert by_reason["schema"]["event_id"] == schema_id
        assert by_reason["schema"]["child_id"] == POISONED
        assert by_reason["parse"]["event_id"] is None
        assert {r["kafka_partition"] for r in letters} == {0}
        assert len({r["kafka_offset"] for r in letters}) == 2
        assert {r["topic"] for r in letters} == {worker.topics.intake}
        assert all(r["consumer"] == CONSUMER and r["status"] == "dead" for r in letters)
        # The poisoned child's event was never applied, the dead letters audited, and every
        # operations contact told of each.
        assert not await applied(database_url, schema_id)
        audited = await fetchval(
            database_url, "SELECT count(*) FROM audit_log WHERE action = 'event.dead_lettered'"
        )
        assert audited == 2
        told = await fetch(
            database_url,
            "SELECT contact_id, step_key FROM notifications WHERE alert_id IS NULL"
            " AND step_key LIKE 'operations:dead_letter:%'",
        )
        assert len(told) == 4 and {t["contact_id"] for t in told} == {"ops-1", "ops-2"}
        assert (
            await worker.metric("goldenhour_dead_letters_total", consumer=CONSUMER, reason="parse")
            == 1
        )
        assert (
            await worker.metric("goldenhour_dead_letters_total", consumer=CONSUMER, reason="schema")
            == 1
        )
        on_topic = await _consume(stack.kafka_bootstrap, worker.topics.dead_letters, 2)
        assert sorted(v for v, _ in on_topic) == sorted([bad_json, schema_two])
        assert {h["reason"] for _, h in on_topic} == {b"parse", b"schema"}
        status, _ = await worker.readyz()
        assert status == 200  # dead letters are a metric, not a reason to stop taking work


async def _letters(dsn: str, n: int) -> list | None:
    rows = await fetch(dsn, "SELECT * FROM dead_letters ORDER BY id")
    return rows if len(rows) >= n else None


async def _consume(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[bytes, dict]] = []
    try:
        async with asyncio.timeout(20):
            async for record in consumer:
                out.append((record.value, dict(record.headers)))
                if len(out) == n:
                    break
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("outage_s", [2, 12])
async def test_a_database_outage_with_events_in_flight_loses_nothing(outage_s, tmp_path):
    # A stack of its own: the database goes away.
    with EmbeddedStack(durable=False) as stack:
        dsn = stack.database_url
        await prepare(dsn, [POISONED, VALID])
        async with streams_worker(stack.kafka_bootstrap, dsn, tmp_path) as worker:
            absent_id, absent = absence(POISONED)
            located_id, found = located(POISONED)
            other_id, other = absence(VALID)
            retries_before = await worker.metric(
                "goldenhour_intake_retries_total", kind="transient"
            )

            stack.stop_postgres()
            stopped = asyncio.get_running_loop().time()
            await produce(
                stack.kafka_bootstrap,
                worker.topics.intake,
                [
                    (POISONED.encode(), absent),
                    (POISONED.encode(), found),
                    (b"junk", b"not json"),  # its dead letter waits for the database too
                    (VALID.encode(), other),
                ],
            )

            async def unready() -> dict | None:
                status, body = await worker.readyz()
                return body if status == 503 else None

            body = await eventually(
                unready, outage_s + 5, "/readyz to answer 503", retry_errors=True
            )
            assert "database unreachable" in json.dumps(body)
            rest = outage_s - (asyncio.get_running_loop().time() - stopped)
            await asyncio.sleep(max(0.0, rest))  # the outage itself, not an assertion
            stack.start_postgres()

            # Applied within a bound of the database being back (the backoff caps at 5 s).
            for event_id in (absent_id, located_id, other_id):
                await eventually(
                    lambda e=event_id: applied(dsn, e), 15, f"event {event_id}", retry_errors=True
                )
            # One child's order held through the retries: the absence, then its return.
            statuses = {
                r["child_id"]: r["status"]
                for r in await fetch(dsn, "SELECT child_id, status FROM alerts")
            }
            assert statuses == {POISONED: "resolved", VALID: "open"}
            # Nothing set aside, and only the poison dead-lettered: the rest was the database's
            # failure, not the events'.
            letters = await eventually(
                lambda: _letters(dsn, 1), 15, "the poison's dead letter", retry_errors=True
            )
            assert [(r["reason"], bytes(r["raw"])) for r in letters] == [("parse", b"not json")]
            assert (
                await fetchval(
                    dsn, "SELECT count(*) FROM audit_log WHERE action = 'intake.set_aside'"
                )
                == 0
            )

            async def ready() -> bool:
                return (await worker.readyz())[0] == 200

            await eventually(ready, 20, "/readyz to answer 200 again", retry_errors=True)
            retries = await worker.metric("goldenhour_intake_retries_total", kind="transient")
            assert retries > retries_before
            assert worker.part.alive()


async def test_readyz_tells_the_truth_while_the_broker_is_paused(tmp_path):
    with EmbeddedStack(durable=False) as stack:
        await prepare(stack.database_url, [VALID])
        async with streams_worker(stack.kafka_bootstrap, stack.database_url, tmp_path) as worker:
            stack.signal("tansu", signal.SIGSTOP)
            try:

                async def unready() -> dict | None:
                    status, body = await worker.readyz()
                    return body if status == 503 else None

                body = await eventually(unready, 15, "/readyz to answer 503", retry_errors=True)
                assert "broker unreachable" in body.get("broker", ""), body
            finally:
                stack.signal("tansu", signal.SIGCONT)

            async def ready() -> bool:
                return (await worker.readyz())[0] == 200

            await eventually(
                ready, 30, "/readyz to answer 200 once the broker is back", retry_errors=True
            )
            # And the worker still takes work.
            event_id, record = absence(VALID)
            await produce(stack.kafka_bootstrap, worker.topics.intake, [(VALID.encode(), record)])
            await eventually(
                lambda: applied(stack.database_url, event_id), 30, "the absence", retry_errors=True
            )

            # It beats while it holds its partitions...
            pid = worker.part.pid
            beat_sql = "SELECT beat_at FROM worker_readiness WHERE part = 'streams' AND pid = $1"
            first = await fetchval(stack.database_url, beat_sql, pid)
            assert first is not None

            async def beat_again() -> bool:
                return await fetchval(stack.database_url, beat_sql, pid) > first

            await eventually(beat_again, 15, "a newer heartbeat", retry_errors=True)
        # ... and says it stopped when it stops.
        gone = await fetchval(
            stack.database_url, "SELECT count(*) FROM worker_readiness WHERE pid = $1", pid
        )
        assert gone == 0
