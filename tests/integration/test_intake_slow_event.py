"""An event whose statement keeps timing out on a database that answers everything else is
dead-lettered after a few tries, so it cannot hold its batch (and every child of its
partitions) for ever; the other children of the batch are applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory, event
from goldenhour.infra.db import DbLimits, create_pool
from goldenhour.streams import intake
from goldenhour.streams.intake import Incoming, IntakeApplier
from goldenhour.streams.outcome import Outcome
from goldenhour.streams.readiness import RetryBoard

SLOW, QUICK = "LBH-2026-0901", "LBH-2026-0902"


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(migrated_db, limits=DbLimits(statement_timeout_s=0.3))
    yield p
    await p.close()


def incoming(child_id: str, offset: int) -> Incoming:
    record = {
        "event": event("checkin.recorded", child_id, {"placement_id": f"{child_id}-P1"}),
        "submitted_by": {"org_code": "OAK", "user_id": "oak-staff1"},
        "received_at": datetime.now(UTC).isoformat(),
    }
    raw = json.dumps(record).encode()
    return Incoming(raw=raw, key=child_id.encode(), topic="t.intake", partition=0, offset=offset)


async def test_a_statement_that_always_times_out_is_dead_lettered_and_the_rest_applied(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[str] = []

    async def handle(
        db: asyncpg.Pool, watch: object, clock: object, record, now: datetime
    ) -> Outcome:
        # Our own handler stands in: the slow child's statement outlives the real server's
        # statement_timeout every time (a real QueryCanceledError from PostgreSQL).
        if record.event.child_id == SLOW:
            await db.execute("SELECT pg_sleep(5)")
        applied.append(record.event.child_id)
        return Outcome()

    monkeypatch.setattr(intake, "handle_intake", handle)
    config = GoldenHourConfig.model_validate(directory()[0])
    published: list[object] = []

    async def get_pool() -> asyncpg.Pool:
        return pool

    async def publish(letter: object) -> None:
        published.append(letter)

    applier = IntakeApplier(get_pool, None, None, config, RetryBoard(), publish)  # type: ignore[arg-type]
    await applier.apply_batch([incoming(SLOW, 0), incoming(QUICK, 1)])

    assert applied == [QUICK]
    letters = await pool.fetch("SELECT * FROM dead_letters")
    assert len(letters) == 1
    [letter] = letters
    assert letter["reason"] == "handler" and letter["child_id"] == SLOW
    assert f"timed out {intake.SLOW_ATTEMPTS} times" in letter["error"]
    assert uuid.UUID(str(letter["event_id"]))
    assert len(published) == 1
