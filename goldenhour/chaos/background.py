"""What a chaos run keeps doing beside its workload: a loop started with the run and stopped
with it, whatever state it is in."""

from __future__ import annotations

import asyncio

import httpx


class Background:
    """A loop (`_run`) kept going as a task from `start()` until `stop()`; how it ended is not
    asked: what it gathered is what counts."""

    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError


async def metrics_page(client: httpx.AsyncClient, url: str) -> str | None:
    """A part's /metrics page, or None when it does not answer 200: a part down is a gap in
    what a sampler gathers, not an error."""
    try:
        r = await client.get(f"{url}/metrics")
    except Exception:  # any failure to answer is a gap
        return None
    return r.text if r.status_code == 200 else None
