"""What a chaos run keeps doing beside its workload: a loop started with the run and stopped
with it, whatever state it is in."""

from __future__ import annotations

import asyncio


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
