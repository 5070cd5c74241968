"""A readiness probe answers in time whatever it probes."""

from __future__ import annotations

import asyncio

from goldenhour.infra import health


async def _stubborn(release: asyncio.Event) -> str | None:
    """A check that does not give up when cancelled (as an asyncpg call to a paused server
    may take long to), until released."""
    while True:
        try:
            await release.wait()
            return None
        except asyncio.CancelledError:
            continue


async def test_a_check_that_ignores_cancellation_still_times_out(monkeypatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.1)
    release = asyncio.Event()

    async def fine() -> str | None:
        return None

    async def broken() -> str | None:
        return "database unreachable"

    try:
        failing = await asyncio.wait_for(
            health.run_checks(
                {"stubborn": lambda: _stubborn(release), "fine": fine, "broken": broken}
            ),
            10,
        )
        assert failing == {"stubborn": "timed out", "broken": "database unreachable"}
    finally:
        release.set()
        await asyncio.sleep(0)
