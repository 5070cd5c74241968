"""Keeping a dead letter, on the real database: a poison record read twice (redelivered after a
crash, or re-read from its partition's start after a rebalance) is one dead letter, audited and
told to the operations contacts once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.infra.dead_letters import DeadLetter, record

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
