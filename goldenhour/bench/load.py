"""Phases 1 and 3: absence reports at a steady rate (report → first SMS), and check-ins as fast
as the API accepts them (end to end, until the streams worker has applied each one)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import structlog

from goldenhour.bench import providers
from goldenhour.bench.directory import Directory
from goldenhour.bench.providers import BenchSystem
from goldenhour.bench.stats import summary
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER

log = structlog.get_logger(__name__)


@dataclass
class Sent:
    child_id: str
    at: float  # time.time() when the request was sent
    answered: float  # ... and when its answer arrived
    status: int


def _client(system: BenchSystem) -> aiohttp.ClientSession:
    # aiohttp, not httpx: at thousands of requests a second the client's own CPU matters.
    # Enough connections that the load generator never queues requests of its own.
    connector = aiohttp.TCPConnector(limit=256)
    return aiohttp.ClientSession(
        base_url=system.api_url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    )


async def _post(
    client: aiohttp.ClientSession, key: str, body: dict, out: list[Sent], child_id: str
) -> None:
    at = time.time()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        async with client.post("/api/v1/events", json=body, headers=headers) as r:
            await r.read()
            status = r.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    out.append(Sent(child_id, at, time.time(), status))


def _absence(child_id: str) -> dict:
    now = datetime.now(UTC).isoformat()
    return event(
        "absence.reported",
        child_id,
        {
            "last_seen_at": now,
            "last_seen_location": "Mare Street bus stop",
            "circumstances": "did not return from college",
            "clothing": "black puffer jacket",
            "placement_id": f"{child_id}-P1",
        },
    )


async def latency(
    system: BenchSystem,
    db: asyncpg.Connection,
    d: Directory,
    children: list[tuple[str, str]],
    rate: float,
    duration: float,
    warmup: float,
) -> dict:
    """Open-loop absence reports, one child each, at `rate`/s for warmup + duration seconds;
    the first `warmup` seconds are sent but not counted."""
    total = int(rate * (warmup + duration))
    if total > len(children):
        raise ValueError(f"{total} reports need as many placed children, have {len(children)}")
    sent: list[Sent] = []
    tasks = []
    async with _client(system) as client:
        t0 = time.time()
        for i, (child, home) in enumerate(children[:total]):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.time()))
            key = system.keys[d.staff(home)]
            tasks.append(asyncio.create_task(_post(client, key, _absence(child), sent, child)))
        await asyncio.gather(*tasks)
    accepted = [s for s in sent if s.status == 202]
    # A backlog is a figure too: wait for it to drain, for at most 180 s.
    arrivals: dict[str, float] = {}

    async def all_arrived() -> bool:
        arrivals.update(providers.first_sms(await system.twilio.messages(), since=t0))
        return all(s.child_id in arrivals for s in accepted)

    with contextlib.suppress(AssertionError):
        await eventually(all_arrived, 180, "every report's first SMS", every=0.2)
    counted = [s for s in accepted if s.at >= t0 + warmup]
    lat = [(arrivals[s.child_id] - s.answered) * 1000 for s in counted if s.child_id in arrivals]
    api = [(s.answered - s.at) * 1000 for s in counted]
    # Where the time goes: 202 → the clock opened the alert (outbox relay, Kafka, the streams
    # worker's queue and transaction), then → the first SMS (Kafka, the dispatcher, Twilio).
    opened = {
        r["child_id"]: float(r["at"])
        for r in await db.fetch(
            "SELECT child_id, extract(epoch FROM opened_at) AS at FROM alerts"
            " WHERE kind = 'missing' AND child_id = ANY($1)",
            [s.child_id for s in counted],
        )
    }
    to_clock = [(opened[s.child_id] - s.answered) * 1000 for s in counted if s.child_id in opened]
    to_sms = [(arrivals[c] - at) * 1000 for c, at in opened.items() if c in arrivals]
    return {
        "rate_per_s": rate,
        "reports": len(counted),
        "refused": len(sent) - len(accepted),
        "sms_missing": sum(1 for s in counted if s.child_id not in arrivals),
        "latency_ms": summary(lat),
        "api_ms": summary(api, ("p50", "p99")),
        "accepted_to_alert_opened_ms": summary(to_clock),
        "alert_opened_to_sms_ms": summary(to_sms),
        "achieved_rate_per_s": round(len(sent) / max(1e-9, sent[-1].at - t0), 1) if sent else 0,
        "samples": lat,
    }


async def ingest(
    system: BenchSystem,
    db: asyncpg.Connection,
    d: Directory,
    children: list[tuple[str, str]],
    duration: float,
    warmup: float,
    concurrency: int,
) -> dict:
    """Check-ins from `concurrency` clients back to back. Sustained end to end: how many events
    the streams worker applied (its processed_events rows) per second over the measured window."""
    count_sql = "SELECT count(*) FROM processed_events WHERE consumer = $1"
    base = await db.fetchval(count_sql, CONSUMER)
    sent: list[Sent] = []
    cycle = itertools.cycle(children)
    t0 = time.time()
    stop_at = t0 + warmup + duration

    async def worker(client: aiohttp.ClientSession) -> None:
        while time.time() < stop_at:
            child, home = next(cycle)
            body = event("checkin.recorded", child, {"placement_id": f"{child}-P1"})
            await _post(client, system.keys[d.staff(home)], body, sent, child)

    progress: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            progress.append((time.time(), await db.fetchval(count_sql, CONSUMER) - base))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    try:
        async with _client(system) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        accepted = sum(1 for s in sent if s.status == 202)
        with contextlib.suppress(AssertionError):
            await eventually(
                lambda: progress and progress[-1][1] >= accepted,
                120,
                "every check-in applied",
                every=0.5,
            )
    finally:
        sampler.cancel()
    drained = progress[-1][0] - stop_at if progress and progress[-1][1] >= accepted else None

    def applied_at(t: float) -> int:
        return max((n for at, n in progress if at <= t), default=0)

    start = t0 + warmup
    applied = applied_at(stop_at) - applied_at(start)
    window = [s for s in sent if s.at >= start and s.answered <= stop_at]
    api = [(s.answered - s.at) * 1000 for s in window if s.status == 202]
    return {
        "ingest_events_per_s": round(applied / duration, 1),
        "ingest_api_accepted_per_s": round(len(api) / duration, 1),
        "ingest_api_ms": summary(api, ("p50", "p99")),
        "ingest_refused": sum(1 for s in sent if s.status != 202),
        "ingest_accepted": accepted,
        "ingest_backlog_drained_s": round(drained, 2) if drained is not None else None,
        "ingest_concurrency": concurrency,
        "ingest_series": [(at - t0, n) for at, n in progress],
    }
