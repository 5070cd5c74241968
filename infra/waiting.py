"""Waiting for things to arrive at the local providers, for tests and the demo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def wait_for_matches(
    items: Callable[[], Sequence[T]],
    predicate: Callable[[T], bool],
    timeout: float,  # noqa: ASYNC109 - a plain timeout argument reads best in tests
    count: int,
    what: str,
) -> list[T]:
    """Poll until at least `count` of `items()` match; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in items() if predicate(m)]
        if len(found) >= count:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{len(found)}/{count} matching {what} after {timeout}s")
        await asyncio.sleep(0.01)
