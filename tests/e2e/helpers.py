"""What the acceptance scenarios do again and again: start a system, place a child, report it
missing, read its alert, ask its database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind, User, hash_api_key
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, directory, event, placement
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from tests.e2e.console_client import set_password

CHILD = "LBH-2026-0042"


@dataclass
class SystemSetup:
    """How a module's shared system is built: its directory, environment, users with a console
    password, and what is done on it before the first test."""

    name: str = "e2e"
    directory: Callable[[], tuple[dict, dict]] = directory
    env: dict[str, str] = field(default_factory=dict)
    passwords: Sequence[str] = ()
    prepare: Callable[[DevSystem], Awaitable[object]] | None = None


@contextlib.asynccontextmanager
async def running_system(stack: EmbeddedStack, setup: SystemSetup) -> AsyncIterator[DevSystem]:
    """A system on a database of its own, stopped at the end whatever happened."""
    config, keys = setup.directory()
    db = stack.create_database(f"{setup.name}_{uuid.uuid4().hex[:8]}")
    system = DevSystem(stack.kafka_bootstrap, db, config, keys, dict(setup.env))
    await system.start()
    try:
        for user in setup.passwords:
            set_password(system, user)
        if setup.prepare is not None:
            await setup.prepare(system)
        yield system
    finally:
        await system.stop()


async def place_high_risk_child(system: DevSystem, child_id: str = CHILD) -> None:
    """A high-risk child identified by Hackney and placed at Oak House."""
    async with system.client("lbh-dm1") as la:
        r = await la.post("/events", json=event("child.identified", child_id, IDENTIFIED))
        assert r.status_code == 202, r.text
        r = await la.post("/events", json=event("placement.started", child_id, placement(child_id)))
        assert r.status_code == 202, r.text


async def report_absence(
    system: DevSystem, last_seen_at: datetime | None = None, child_id: str = CHILD
) -> dict:
    async with system.client("oak-staff1") as home:
        r = await home.post(
            "/events",
            json=event(
                "absence.reported",
                child_id,
                {
                    "last_seen_at": (last_seen_at or datetime.now(UTC)).isoformat(),
                    "last_seen_location": "Mare Street bus stop, Hackney",
                    "circumstances": "Did not return from college; phone switched off",
                    "clothing": "black puffer jacket, grey joggers",
                    "placement_id": f"{child_id}-P1",
                },
            ),
        )
        assert r.status_code == 202, r.text
        return r.json()


async def the_alert(system: DevSystem, user: str = "lbh-dm1") -> dict:
    """The one alert of the test, with its timeline, once it exists."""
    async with system.client(user) as c:

        async def listed() -> list[dict]:
            r = await c.get("/alerts", params={"status": "all"})
            assert r.status_code == 200, r.text
            return r.json()

        alerts = await eventually(listed, 10, "an alert to be raised", every=0.1)
        detail = await c.get(f"/alerts/{alerts[0]['alert_id']}")
        assert detail.status_code == 200
        return detail.json()


def step_keys(system: DevSystem, policy: str = "high") -> list[str]:
    """The stable keys of a policy's steps in the system's config, first to last."""
    config = GoldenHourConfig.model_validate(system.config)
    return [s.key for s in config.policy_for(policy).steps]


async def post_event(system: DevSystem, user: str, body: object) -> httpx.Response:
    """`POST /events` as one user."""
    async with system.client(user) as c:
        return await c.post("/events", json=body)


async def api_get(system: DevSystem, user: str, path: str, **params: object) -> httpx.Response:
    """A GET of the API as one user."""
    async with system.client(user) as c:
        return await c.get(path, params=params)


def absence(**data: object) -> dict:
    """An `absence.reported` envelope for CHILD, seen now at Dalston unless `data` says else."""
    body: dict[str, object] = {
        "last_seen_at": datetime.now(UTC).isoformat(),
        "last_seen_location": "Dalston",
    }
    body.update(data)
    return event("absence.reported", CHILD, body)


async def counts(system: DevSystem) -> tuple[int, ...]:
    """The rows an accepted event writes: events, outbox and placements."""
    return tuple(
        [
            await fetchval(system, f"SELECT count(*) FROM {table}")
            for table in ("events", "outbox", "placements")
        ]
    )


async def refused(
    system: DevSystem, user: str | None, body: object, status: int, **kw: Any
) -> httpx.Response:
    """Post to /events, expect `status`, and check that nothing was written."""
    before = await counts(system)
    headers = {"Authorization": f"Bearer {system.keys[user]}"} if user else {}
    async with httpx.AsyncClient(base_url=f"{system.api_url}/api/v1", headers=headers) as c:
        if isinstance(body, bytes | str):
            r = await c.post(
                "/events", content=body, headers={"Content-Type": "application/json"}, **kw
            )
        else:
            r = await c.post("/events", json=body, **kw)
    assert r.status_code == status, r.text
    assert await counts(system) == before
    return r


async def create_subscription(system: DevSystem, user: str, body: dict) -> httpx.Response:
    async with system.client(user) as c:
        return await c.post("/subscriptions", json=body)


async def subscription_count(system: DevSystem) -> int:
    return await fetchval(system, "SELECT count(*) FROM subscriptions")


def sneak_key_in(config: GoldenHourConfig) -> None:
    """Give an immigration-enforcement user the key `hoie-key`: what validation would refuse."""
    hoie = Organisation.model_construct(
        code="HOIE",
        kind=OrgKind.immigration_enforcement,
        name="Immigration Enforcement",
        users=[],
        contacts=[],
    )
    user = User.model_construct(
        id="hoie-1", roles=["admin"], api_key_sha256=hash_api_key("hoie-key")
    )
    config._keys[hash_api_key("hoie-key")] = (hoie, user)


@contextlib.asynccontextmanager
async def connection(system: DevSystem) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own for one query, so a database restart never breaks a pool here."""
    conn = await asyncpg.connect(system.database_url, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


async def fetch(system: DevSystem, sql: str, *args: object) -> list[asyncpg.Record]:
    async with connection(system) as conn:
        return await conn.fetch(sql, *args)


async def fetchval(system: DevSystem, sql: str, *args: object) -> Any:
    async with connection(system) as conn:
        return await conn.fetchval(sql, *args)


async def execute(system: DevSystem, sql: str, *args: object) -> None:
    async with connection(system) as conn:
        await conn.execute(sql, *args)


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write (key, value) records to `topic`, and wait for the broker's acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()
