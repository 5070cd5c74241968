"""The golden-hour clock's durable timers hold at 100,000 pending (on the real Postgres).

The timers are `alerts.next_due_at`, found through the partial index `alerts_due_idx`. With
100,000 alerts due over the next hour, claiming the few due now must read them by index, fire
exactly those, leave every future timer untouched, and two claimers at once must fire each step
once. Speed is printed and recorded as a property, never asserted (log rendering is left out:
the clock's log lines are captured, not printed).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.infra.db import create_pool, migrate
from goldenhour.streams.clock_store import ClockStore

# The default policy's steps by their stable keys, first to last.
STEPS = [s.key for s in GoldenHourConfig.model_validate(directory()[0]).policy_for("high").steps]

PENDING = 100_000
DUE = 200
RACED = 1_000
STEP0_MESSAGES = 6  # control room, LA duty manager, care home manager; sms and email each

SEED = """
INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,
                    local_authority, care_home, ack_code, opened_at, next_due_at)
SELECT gen_random_uuid(), 'LBH-2026-' || n, 'missing', 'open', 'high', 'high', t.at,
       'LBH', 'OAK', lpad(n::text, 8, '0'), $3, t.at
FROM generate_series($1::int, $2::int) AS n,
     LATERAL (SELECT $3::timestamptz + $4::interval + (n - $1) * $5::interval AS at) AS t
"""


@dataclass
class Timers:
    pool: asyncpg.Pool
    t0: datetime
    store: ClockStore


def _ids(first: int, last: int) -> str:
    return f"child_id IN (SELECT 'LBH-2026-' || n FROM generate_series({first}, {last}) n)"


async def _seed(conn, first: int, last: int, t0: datetime, offset: timedelta, step: timedelta):
    await conn.execute(SEED, first, last, t0, offset, step)


async def _fingerprint(conn) -> str:
    """A digest of every column of the 100,000 future alerts' rows."""
    return await conn.fetchval(
        "SELECT md5(string_agg(md5(alerts::text), '' ORDER BY alert_id)) FROM alerts"
        f" WHERE {_ids(1, PENDING)}"
    )


@pytest.fixture(scope="module")
async def timers(stack) -> AsyncIterator[Timers]:
    """One database holding 100,000 open alerts due over the next hour, none due yet."""
    dsn = stack.create_database(f"t_timers_{uuid.uuid4().hex[:8]}")
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=2, max_size=4)
    t0 = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await _seed(conn, 1, PENDING, t0, timedelta(seconds=1), timedelta(milliseconds=36))
        await conn.execute("ANALYZE alerts")
    print(f"\nseeded {PENDING} pending timers in {time.perf_counter() - started:.2f}s")
    config = GoldenHourConfig.model_validate(directory()[0])
    try:
        yield Timers(pool, t0, ClockStore(config))
    finally:
        await pool.close()


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


async def _explain(conn, query: str, args) -> list[dict]:
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    return _plan_nodes(json.loads(raw)[0]["Plan"])


def _assert_by_index(nodes: list[dict]) -> None:
    shapes = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert not [s for s in shapes if s[0] == "Seq Scan"], shapes
    assert any(
        s[0] in ("Index Scan", "Index Only Scan") and s[2] == "alerts_due_idx" for s in shapes
    ), shapes


async def _claim_all(store: ClockStore, conn, now: datetime, limit: int) -> tuple[set, list]:
    """claim_due until it claims nothing; the alerts advanced and (count, seconds) per batch."""
    advanced: set[uuid.UUID] = set()
    batches = []
    while True:
        started = time.perf_counter()
        outcome = await store.claim_due(conn, now, limit)
        batch = {e.alert_id for e in outcome.events}
        if not batch:
            return advanced, batches
        batches.append((len(batch), time.perf_counter() - started))
        advanced |= batch


async def test_claims_only_the_due_among_100k_pending(timers: Timers, record_property) -> None:
    t0, store = timers.t0, timers.store
    first, last = PENDING + 1, PENDING + DUE
    async with timers.pool.acquire() as conn:
        await _seed(conn, first, last, t0, -timedelta(minutes=1), -timedelta(milliseconds=10))
        due = {
            r[0] for r in await conn.fetch(f"SELECT alert_id FROM alerts WHERE {_ids(first, last)}")
        }
        before = await _fingerprint(conn)

        queries: list = []  # every statement claim_due sent, to find its claim query
        with conn.query_logger(queries.append), capture_logs():
            advanced, batches = await _claim_all(store, conn, t0, limit=500)
        claims = [q for q in queries if "SKIP LOCKED" in q.query]

        # Exactly the 200 due alerts were advanced, each once.
        assert advanced == due
        steps = await conn.fetch(
            "SELECT alert_id, step_key, status FROM alert_steps WHERE alert_id = ANY($1)",
            list(due),
        )
        assert {(r["alert_id"], r["step_key"], r["status"]) for r in steps} == {
            (a, STEPS[0], "fired") for a in due
        }
        assert len(steps) == DUE
        per_alert = await conn.fetch(
            "SELECT alert_id, count(*) AS n, count(DISTINCT (contact_id, channel)) AS pairs,"
            " bool_and(step_key = $2) AS s0 FROM notifications WHERE alert_id = ANY($1)"
            " GROUP BY alert_id",
            list(due),
            STEPS[0],
        )
        assert {r["alert_id"] for r in per_alert} == due
        assert {(r["n"], r["pairs"], r["s0"]) for r in per_alert} == {
            (STEP0_MESSAGES, STEP0_MESSAGES, True)
        }
        for table in ("alert_steps", "notifications"):
            assert not await conn.fetchval(
                f"SELECT count(*) FROM {table} JOIN alerts USING (alert_id)"
                f" WHERE alerts.{_ids(1, PENDING)}"
            ), f"a future alert has {table} rows"
        # Every advanced alert is re-armed in the future; no future timer was touched.
        assert not await conn.fetchval(
            f"SELECT count(*) FROM alerts WHERE {_ids(first, last)}"
            " AND (next_due_at IS NULL OR next_due_at <= $1)",
            t0,
        )
        assert await _fingerprint(conn) == before, "a future timer's row changed"

        # The claim query claim_due really ran (captured, not copied) reads by the due index,
        # as a custom plan and as the generic plan a reused prepared statement may switch to.
        assert claims, "claim_due ran no FOR UPDATE SKIP LOCKED query"
        query, args = claims[0].query, claims[0].args
        nodes = await _explain(conn, query, args)
        print(
            "claim plan:",
            " -> ".join(f"{n['Node Type']}" for n in nodes),
            nodes[-1].get("Index Name"),
        )
        _assert_by_index(nodes)
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            _assert_by_index(await _explain(conn, query, args))
        # The claimer's "when next?" query is an index read too.
        _assert_by_index(
            await _explain(
                conn, "SELECT min(next_due_at) FROM alerts WHERE next_due_at IS NOT NULL", ()
            )
        )

        total = sum(s for _, s in batches)
        for i, (n, s) in enumerate(batches):
            print(f"claim batch {i}: {n} alerts in {s * 1000:.1f} ms")
            record_property(f"claim_batch_{i}_ms", round(s * 1000, 1))
        print(f"per alert: {total / DUE * 1000:.2f} ms, {len(queries) / DUE:.1f} statements")
        record_property("claim_per_alert_ms", round(total / DUE * 1000, 2))

        # An hour on: the earliest future timers fall due and are claimed by the same path.
        later = t0 + timedelta(minutes=61)
        started = time.perf_counter()
        with capture_logs():
            outcome = await store.claim_due(conn, later, 500)
        print(f"claim at t0+61m: 500 in {(time.perf_counter() - started) * 1000:.1f} ms")
        sample = {e.alert_id for e in outcome.events}
        assert len(sample) == 500 and not sample & due
        rows = await conn.fetch(
            "SELECT a.alert_id, a.next_due_at, array_agg(s.step_key ORDER BY s.step_key) AS keys"
            " FROM alerts a JOIN alert_steps s USING (alert_id)"
            " WHERE a.alert_id = ANY($1) GROUP BY a.alert_id, a.next_due_at",
            list(sample),
        )
        assert len(rows) == 500
        assert all(sorted(r["keys"]) == sorted(STEPS) for r in rows)  # every step was due
        assert all(r["next_due_at"] is None or r["next_due_at"] > later for r in rows)


async def test_two_claimers_fire_each_due_alert_once(timers: Timers, record_property) -> None:
    t0, store = timers.t0, timers.store
    first, last = 2 * PENDING + 1, 2 * PENDING + RACED
    async with timers.pool.acquire() as seed:
        await _seed(seed, first, last, t0, -timedelta(minutes=2), -timedelta(milliseconds=5))
        raced = {
            r[0] for r in await seed.fetch(f"SELECT alert_id FROM alerts WHERE {_ids(first, last)}")
        }
    now = t0  # the earliest future timer is t0 + 1s

    async def claimer() -> set:
        async with timers.pool.acquire() as conn:
            advanced, _ = await _claim_all(store, conn, now, limit=50)
            return advanced

    started = time.perf_counter()
    with capture_logs():
        a, b = await asyncio.gather(claimer(), claimer())
    elapsed = time.perf_counter() - started
    print(f"\ntwo claimers: {len(a)} + {len(b)} alerts in {elapsed * 1000:.1f} ms")
    record_property("two_claimers_ms", round(elapsed * 1000, 1))
    assert a | b == raced and not a & b

    async with timers.pool.acquire() as conn:
        steps = await conn.fetch(
            "SELECT alert_id, count(*) AS n FROM alert_steps"
            " WHERE step_key = $2 AND alert_id = ANY($1) GROUP BY alert_id",
            list(raced),
            STEPS[0],
        )
        assert len(steps) == RACED and {r["n"] for r in steps} == {1}
        pairs = await conn.fetch(
            "SELECT alert_id, contact_id, channel, count(*) AS n FROM notifications"
            " WHERE alert_id = ANY($1) GROUP BY alert_id, contact_id, channel",
            list(raced),
        )
        assert len(pairs) == RACED * STEP0_MESSAGES and {r["n"] for r in pairs} == {1}
