"""A real streams worker process for the fault tests, fed straight from Kafka, with its health
port; and small helpers to write intake records and to read the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaProducer

from goldenhour.contracts.events import IntakeRecord, Submitter, parse_event
from goldenhour.dev.london import directory, event
from goldenhour.dev.parts import PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import migrate
from goldenhour.infra.topics import Topics, ensure_topics

METRICS_TOKEN = "metrics-token-of-the-fault-tests"

OPERATIONS = [
    {"id": "ops-1", "name": "Ops One", "phone": "+447700900901", "email": "ops1@gh.example"},
    {"id": "ops-2", "name": "Ops Two", "phone": "+447700900902", "email": "ops2@gh.example"},
]


@dataclass
class Worker:
    """One running streams worker."""

    part: PartProcess
    health_url: str
    topics: Topics

    async def readyz(self) -> tuple[int, dict]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            r = await client.get(f"{self.health_url}/readyz")
            return r.status_code, r.json()

    async def metric(self, name: str, **labels: str) -> float:
        """One sample of the worker's /metrics (0 when absent)."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            text = (await client.get(f"{self.health_url}/metrics", headers=bearer)).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            if metric != name:
                continue
            got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
            if got == want:
                return float(value)
        return 0.0


async def fetchval(dsn: str, sql: str, *args: object) -> Any:
    """One query on a connection of its own, so a database restart never breaks a pool here."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def prepare(dsn: str, children: list[str]) -> None:
    """The schema and high-risk children of Hackney placed at Oak House."""
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        for child in children:
            await conn.execute(
                "INSERT INTO children (child_id, local_authority, risk_level, identified_at)"
                " VALUES ($1, 'LBH', 'high', now())",
                child,
            )
            await conn.execute(
                "INSERT INTO placements (placement_id, child_id, care_home, started_at)"
                " VALUES ($1, $2, 'OAK', now())",
                f"{child}-P1",
                child,
            )
    finally:
        await conn.close()


def intake_record(event_type: str, child_id: str, data: dict) -> tuple[uuid.UUID, bytes]:
    """An intake record as the API publishes it, and its event id."""
    now = datetime.now(UTC)
    record = IntakeRecord(
        event=parse_event(event(event_type, child_id, data), now),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=now,
    )
    return record.event.event_id, record.model_dump_json().encode()


def absence(child_id: str) -> tuple[uuid.UUID, bytes]:
    return intake_record(
        "absence.reported", child_id, {"last_seen_at": datetime.now(UTC).isoformat()}
    )


def located(child_id: str) -> tuple[uuid.UUID, bytes]:
    return intake_record(
        "child.located",
        child_id,
        {"located_at": datetime.now(UTC).isoformat(), "status": "found_safe"},
    )


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], **kw) -> None:
    """Write (key, value) records to `topic` together, and wait for the broker's acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=v, key=k, **kw) for k, v in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def streams_worker(
    bootstrap: str,
    dsn: str,
    folder: Path,
    prefix: str | None = None,
    scale: float = 0.2,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Worker]:
    """A streams worker process, ready (its /readyz says so); stopped afterwards, whatever
    happened."""
    raw = directory(scale=scale)[0]
    raw["operations"] = OPERATIONS
    config_path = folder / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    topics = Topics(prefix or f"gh-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics)
    port = free_port()
    part = PartProcess(
        "streams",
        {
            **os.environ,
            "GOLDENHOUR_CONFIG": str(config_path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": bootstrap,
            "GOLDENHOUR_DATABASE_URL": dsn,
            "GOLDENHOUR_TOPIC_PREFIX": topics.prefix,
            "GOLDENHOUR_HEALTH_PORT": str(port),
            "GOLDENHOUR_METRICS_TOKEN": METRICS_TOKEN,
            "GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S": "2",
            "TMPDIR": str(folder),
            **(env or {}),
        },
    ).start()
    worker = Worker(part, f"http://127.0.0.1:{port}", topics)
    try:

        async def ready() -> bool:
            if not part.alive():
                raise RuntimeError("the streams worker exited early")
            try:
                status, _ = await worker.readyz()
            except httpx.HTTPError:
                return False  # not listening yet
            return status == 200

        await eventually(ready, 60, "the streams worker to be ready", every=0.1)
        yield worker
    finally:
        await asyncio.to_thread(part.stop)
