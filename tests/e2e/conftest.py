"""The running system for the acceptance scenarios: every part as its own OS process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.devsystem import IDENTIFIED, DevSystem, directory, event, placement
from goldenhour.dev.stack import EmbeddedStack

CHILD = "LBH-2026-0042"

SystemFactory = Callable[..., Awaitable[DevSystem]]


@pytest.fixture
async def start_system(stack: EmbeddedStack, database_url: str) -> AsyncIterator[SystemFactory]:
    """Start a system with a given policy scale; every one started is stopped afterwards."""
    started: list[DevSystem] = []

    async def start(
        scale: float | None = None,
        extra_unless_ack_step: bool = False,
        env: dict[str, str] | None = None,
        watchers: dict[str, str | int] | None = None,
    ) -> DevSystem:
        config, keys = directory(
            scale=scale, extra_unless_ack_step=extra_unless_ack_step, watchers=watchers
        )
        system = DevSystem(stack.kafka_bootstrap, database_url, config, keys, env or {})
        started.append(system)
        return await system.start()

    yield start
    for system in started:
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
        for _ in range(100):
            r = await c.get("/alerts", params={"status": "all"})
            assert r.status_code == 200, r.text
            if r.json():
                detail = await c.get(f"/alerts/{r.json()[0]['alert_id']}")
                assert detail.status_code == 200
                return detail.json()
            await asyncio.sleep(0.1)
    raise AssertionError("no alert was raised")


def step_keys(system: DevSystem, policy: str = "high") -> list[str]:
    """The stable keys of a policy's steps in the system's config, first to last."""
    config = GoldenHourConfig.model_validate(system.config)
    return [s.key for s in config.policy_for(policy).steps]


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until `predicate()` holds, or fail saying what did not happen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
