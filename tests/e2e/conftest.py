"""The running system for the acceptance scenarios: every part as its own OS process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack
from tests.e2e.helpers import SystemSetup, running_system

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
        log_dir: Path | None = None,
    ) -> DevSystem:
        config, keys = directory(
            scale=scale, extra_unless_ack_step=extra_unless_ack_step, watchers=watchers
        )
        system = DevSystem(stack.kafka_bootstrap, database_url, config, keys, env or {})
        system.log_dir = log_dir
        started.append(system)
        return await system.start()

    yield start
    for system in started:
        await system.stop()


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    """How this module's shared `system` is built; a module overrides it to differ."""
    return SystemSetup()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(stack: EmbeddedStack, system_setup: SystemSetup) -> AsyncIterator[DevSystem]:
    """One system shared by the tests of a module, built as its `system_setup` says."""
    async with running_system(stack, system_setup) as s:
        yield s
