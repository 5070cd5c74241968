"""What `goldenhour chaos` was asked for."""

from __future__ import annotations

from dataclasses import dataclass

from goldenhour.chaos import faults


@dataclass(frozen=True)
class Options:
    """What `goldenhour chaos` was asked for."""

    seed: int
    duration_s: float
    children: int
    settle_s: float
    scale: float
    fault_minute_s: float = 60.0
    skew_s: float = 0.0
    kinds: tuple[str, ...] = faults.KINDS
    # The scale-out run: faults hit the workers only, each part's replicas stopped and killed
    # in the first round.
    scale_out: bool = False
