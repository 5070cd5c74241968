"""A clock's state as the store would hand it to `escalation.plan`: nothing decided yet unless
a test says otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from goldenhour.streams.escalation import ClockState


def clock_state(anchor_at: datetime, **changes: Any) -> ClockState:
    """A fresh alert's clock anchored at `anchor_at`, with `changes` applied."""
    fresh: dict[str, Any] = dict(
        anchor_at=anchor_at,
        acknowledged=False,
        resolved=False,
        decided=frozenset(),
        first_fired_at=None,
        renotify_done=0,
    )
    return ClockState(**(fresh | changes))
