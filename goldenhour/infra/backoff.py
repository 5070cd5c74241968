"""How long to wait before the next try of something that failed: pure, so tests need no clock.

Exponential with "full jitter" (a random wait between half the exponential step and all of
it), so replicas that failed together do not retry together.
"""

from __future__ import annotations

import random


def delay(failures: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
    step = min(cap_s, base_s * 2 ** max(0, failures - 1))
    return (rng or random).uniform(step / 2, step)
