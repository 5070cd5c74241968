"""What the demo observed and checked, and how it fails."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from goldenhour.dev.waiting import eventually

T = TypeVar("T")


class DemoError(Exception):
    """The demo could not show what it set out to show."""


class ExpectationFailed(DemoError):
    """Something the demo expects did not happen."""


class StartFailed(DemoError):
    """The system could not be started."""


@dataclass
class Run:
    """What the scenario observed on the way, for the summary, and the checks made."""

    reported_at: float = 0.0
    first_sms_ms: float = 0.0
    ack_code: str = ""
    ack_sent_at: float = 0.0
    alert_id: str = ""
    started: float = field(default_factory=time.monotonic)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))


async def expect(
    check: Callable[[], T | Awaitable[T]],
    deadline: float,
    failure: str | Callable[[], str],
    every: float = 0.02,
) -> T:
    """The first true answer of `check` before the monotonic `deadline`; else ExpectationFailed
    with `failure` (a callable one is asked at the time, to tell what was seen)."""
    try:
        return await eventually(check, deadline - time.monotonic(), "the demo", every=every)
    except AssertionError:
        raise ExpectationFailed(failure if isinstance(failure, str) else failure()) from None
