"""Keeping a dead letter, on the real database: a poison record read twice (redelivered after a
crash, or re-read from its partition's start after a rebalance) is one dead letter, audited and
told to the operations contacts once; one that can never be applied is discarded with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.infra.dead_letters import DeadLetter, Refused, count_open, discard, record, replay

NOW = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)


def config() -> GoldenHourConfig:
    raw = directory()[0]
    raw["operations"] = [
        {"id": "ops-1", "phone": "+447700900123", "email": "ops@goldenhour.example"}
    ]
    return GoldenHourConfig.model_validate(raw)


def poison(offset: int, raw: bytes = b"{not json") -> DeadLetter:
    return DeadLetter(
        consumer="streams",
        topic="goldenhour.intake",
        raw=raw,
        reason="parse",
        error="Expecting property name",
        partition=2,
        offset=offset,
    )


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM dead_letters"),
        await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'event.dead_lettered'"),
        await pool.fetchval("SELECT count(*) FROM notifications WHERE org_code = 'OPERATIONS'"),
    )


async def test_a_poison_record_read_twice_is_kept_and_told_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await record(conn, poison(7), config(), NOW)
        again = await record(conn, poison(7), config(), NOW)
    assert first is not None and again is None
    assert await counts(pool) == (1, 1, 1)


async def test_another_record_is_another_dead_letter(pool: asyncpg.Pool) -> None:
    """Another offset, or other bytes at the same offset (a broker that lost its log and
    numbers from 0 again), is a new letter."""
    async with pool.acquire() as conn:
        assert await record(conn, poison(7), config(), NOW) is not None
        assert await record(conn, poison(8), config(), NOW) is not None
        assert await record(conn, poison(7, b"<xml/>"), config(), NOW) is not None
    dead, audited, _ = await counts(pool)
    assert (dead, audited) == (3, 3)


async def test_a_letter_discarded_with_a_reason_is_closed_once_and_audited(
    pool: asyncpg.Pool,
) -> None:
    """A record that can never be applied is discarded, not deleted: it leaves the open count,
    keeps its reason, and can be neither discarded again nor replayed."""
    async with pool.acquire() as conn:
        dead_id = await record(conn, poison(9), config(), NOW)
        assert dead_id is not None
        await discard(conn, dead_id, "night-ops", "a test record sent by the supplier")
        with pytest.raises(Refused, match="already discarded .* by night-ops"):
            await discard(conn, dead_id, "night-ops", "again")
        with pytest.raises(Refused, match="already discarded"):
            await replay(conn, dead_id, "night-ops")
        with pytest.raises(Refused, match="no such dead letter"):
            await discard(conn, dead_id + 1000, "night-ops", "unknown")
    row = await pool.fetchrow("SELECT * FROM dead_letters WHERE id = $1", dead_id)
    assert (row["status"], row["discarded_by"], row["discard_reason"]) == (
        "discarded",
        "night-ops",
        "a test record sent by the supplier",
    )
    assert await count_open(pool) == 0
    audited = await pool.fetchval(
        "SELECT detail->>'reason' FROM audit_log WHERE action = 'event.dead_letter_discarded'"
    )
    assert audited == "a test record sent by the supplier"
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
