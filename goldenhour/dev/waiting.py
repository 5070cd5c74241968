"""Waiting for something to happen, for tests and the demo: the one polling loop they share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float,
    what: str,
    every: float = ...,
    retry_errors: bool = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout: float,
    what: str,
    every: float = ...,
    retry_errors: bool = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    every: float = 0.05,
    retry_errors: bool = False,
) -> Any:
    """Poll `check` (sync or async) until it answers something true, and return that.

    An AssertionError from `check` counts as "not yet", so a check may be written as asserts;
    with `retry_errors`, so does any other exception (a database or broker coming back). When
    `timeout` seconds pass, fails with an AssertionError naming `what` and the last thing seen."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            seen = result
        except AssertionError as exc:
            seen = exc
        except Exception as exc:
            if not retry_errors:
                raise
            seen = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; saw {seen!r}")
        await asyncio.sleep(every)


async def wait_for_matches(
    items: Callable[[], Sequence[T]],
    predicate: Callable[[T], bool],
    timeout: float,
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
