"""The seeded fault schedule: a seed and a window in, the faults and their times out.

Faults follow one another with a recovery gap, never overlap: each one's recovery and lateness
can then be told apart, and a poison record is consumed before the next broker restart could
lose it (it never passed through the outbox, so nothing could re-publish it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KILL_PART = "kill_part"
BROKER_PAUSE = "broker_pause"
BROKER_RESTART = "broker_restart"
POSTGRES_RESTART = "postgres_restart"
POSTGRES_PAUSE = "postgres_pause"
POISON = "poison"

KINDS = (KILL_PART, BROKER_PAUSE, BROKER_RESTART, POSTGRES_RESTART, POSTGRES_PAUSE, POISON)

# How long a fault lasts (pauses), in seconds; the others are instantaneous.
DURATIONS = {BROKER_PAUSE: 15.0, POSTGRES_PAUSE: 8.0}
# Seconds after a fault ends before the next may begin, so the system can be seen recovering.
GAPS = {
    KILL_PART: 6.0,
    BROKER_PAUSE: 9.0,
    BROKER_RESTART: 9.0,
    POSTGRES_RESTART: 8.0,
    POSTGRES_PAUSE: 8.0,
    POISON: 4.0,
}
# After the first round (every kind once), how often each kind comes up.
WEIGHTS = {
    KILL_PART: 4,
    BROKER_PAUSE: 1,
    BROKER_RESTART: 1,
    POSTGRES_RESTART: 1,
    POSTGRES_PAUSE: 1,
    POISON: 2,
}
# The workload runs alone this long before the first fault.
LEAD_IN_S = 4.0
# Up to this much random slack before each fault.
JITTER_S = 2.0


@dataclass(frozen=True)
class Fault:
    """One fault: `at` seconds into the window, of `kind`, on `target`, lasting `duration` s."""

    at: float
    kind: str
    target: str
    duration: float

    @property
    def label(self) -> str:
        """What a report calls it, e.g. `kill_part(streams-2)`."""
        return f"{self.kind}({self.target})" if self.target else self.kind


def schedule(seed: int, window_s: float, parts: list[str]) -> list[Fault]:
    """The faults of a run: every kind once in a seeded order (a kind that no longer fits is
    skipped), then seeded picks while they fit in `window_s`; `parts` are what a kill may hit."""
    if not parts:
        raise ValueError("schedule needs at least one part to kill")
    rng = random.Random(seed)
    first = list(KINDS)
    rng.shuffle(first)
    faults: list[Fault] = []
    t = LEAD_IN_S
    for kind in first:
        fault = _fault(rng, kind, t, parts)
        if settled_at(fault) <= window_s:
            faults.append(fault)
            t = settled_at(fault)
    while True:
        kind = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        fault = _fault(rng, kind, t, parts)
        if settled_at(fault) > window_s:
            return faults
        faults.append(fault)
        t = settled_at(fault)


def _fault(rng: random.Random, kind: str, t: float, parts: list[str]) -> Fault:
    at = round(t + rng.uniform(0.0, JITTER_S), 2)
    target = rng.choice(parts) if kind == KILL_PART else ""
    return Fault(at, kind, target, DURATIONS.get(kind, 0.0))


def settled_at(fault: Fault) -> float:
    """When the next fault may begin: this one's end plus its recovery gap."""
    return fault.at + fault.duration + GAPS[fault.kind]
