"""The seeded fault schedule: a seed and a window in, the faults and their times out; and
each fault as it happened (`Window`), which the checks attribute lateness to.

Faults follow one another with a recovery gap, never overlap: each one's recovery and lateness
can then be told apart, and a poison record is consumed before the next broker restart could
lose it (it never passed through the outbox, so nothing could re-publish it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

KILL_PART = "kill_part"
# SIGTERM to one worker replica (SIGKILL if it has not exited in time), kept down long enough
# that the other replica of its part must have taken over all its partitions and due timers.
GRACEFUL_STOP = "graceful_stop"
BROKER_PAUSE = "broker_pause"
BROKER_RESTART = "broker_restart"
POSTGRES_RESTART = "postgres_restart"
POSTGRES_PAUSE = "postgres_pause"
POISON = "poison"
# The providers misbehaving: Twilio down, throttling, slow or unable to list what it holds;
# the mail server refusing connections or holding them without a word.
TWILIO_500 = "twilio_500"
TWILIO_429 = "twilio_429"
TWILIO_429_RETRY_AFTER = "twilio_429_retry_after"
TWILIO_SLOW_CREATE = "twilio_slow_create"
TWILIO_LIST_FAIL = "twilio_list_fail"
TWILIO_LIST_LAG = "twilio_list_lag"
SMTP_REFUSE = "smtp_refuse"
SMTP_BLACKHOLE = "smtp_blackhole"
# The product changing under open alerts: a child's risk raised, a deploy reordering a policy.
RISK_CHANGE = "risk_change"
POLICY_REORDER = "policy_reorder"

INFRA_KINDS = (KILL_PART, BROKER_PAUSE, BROKER_RESTART, POSTGRES_RESTART, POSTGRES_PAUSE, POISON)
STORM_KINDS = (TWILIO_500, TWILIO_429, TWILIO_429_RETRY_AFTER)
TWILIO_KINDS = (*STORM_KINDS, TWILIO_SLOW_CREATE, TWILIO_LIST_FAIL, TWILIO_LIST_LAG)
SMTP_KINDS = (SMTP_REFUSE, SMTP_BLACKHOLE)
PROVIDER_KINDS = (*TWILIO_KINDS, *SMTP_KINDS)
KINDS = (*INFRA_KINDS, GRACEFUL_STOP, *PROVIDER_KINDS, RISK_CHANGE, POLICY_REORDER)
# The short run in `make test`: every infrastructure fault, one Twilio outage and a risk change
# (the clock skew is not a fault: the two dispatchers run skewed for the whole run). A graceful
# stop is not among them: its 20 s down and recovery would not fit the quick window beside the
# rest, and the scale-out run in `make test` is made of them.
QUICK_KINDS = (*INFRA_KINDS, TWILIO_500, RISK_CHANGE)
# The scale-out run: the workers stopped and killed one replica at a time under load.
SCALE_OUT_KINDS = (GRACEFUL_STOP, KILL_PART)
# The parts a graceful stop may hit: those whose replicas share a consumer group's partitions.
WORKER_PARTS = ("streams", "dispatcher")
# A graceful stop waits this long for the replica to exit on SIGTERM before it SIGKILLs it.
STOP_KILL_AFTER_S = 15.0

# How long a fault lasts, in seconds; the others are instantaneous. A Twilio storm lasts 1–3
# "fault minutes" instead (60 s in the full run, fewer in the quick one).
DURATIONS = {
    # Down this long (from the SIGTERM): well past a rebalance, so the survivor must hold
    # every partition and fire the due timers before the replica starts again.
    GRACEFUL_STOP: 20.0,
    BROKER_PAUSE: 15.0,
    POSTGRES_PAUSE: 8.0,
    TWILIO_SLOW_CREATE: 40.0,
    TWILIO_LIST_FAIL: 30.0,
    TWILIO_LIST_LAG: 45.0,
    SMTP_REFUSE: 30.0,
    SMTP_BLACKHOLE: 40.0,
}
STORM_MINUTES = (1.0, 3.0)
# Retry-After values a throttling Twilio may give, up to an hour: the dispatcher must cap them.
RETRY_AFTERS_S = (5.0, 60.0, 600.0, 3600.0)
# While a create is slow it answers after this long: past the client's 10 s timeout.
SLOW_CREATE_S = 12.0
# While the list API lags, a message shows in it only this long after it was created.
LIST_LAG_S = 30.0
# Seconds after a fault ends before the next may begin, so the system can be seen recovering.
GAPS = {
    KILL_PART: 6.0,
    GRACEFUL_STOP: 8.0,
    BROKER_PAUSE: 9.0,
    BROKER_RESTART: 9.0,
    POSTGRES_RESTART: 8.0,
    POSTGRES_PAUSE: 8.0,
    POISON: 4.0,
    TWILIO_500: 12.0,
    TWILIO_429: 12.0,
    TWILIO_429_RETRY_AFTER: 12.0,
    TWILIO_SLOW_CREATE: 15.0,  # the last slow create still answers, and is looked for, after
    TWILIO_LIST_FAIL: 10.0,
    TWILIO_LIST_LAG: 10.0,
    SMTP_REFUSE: 10.0,
    SMTP_BLACKHOLE: 10.0,
    RISK_CHANGE: 4.0,
    POLICY_REORDER: 10.0,
}
# After the first round (every kind once), how often each kind comes up.
WEIGHTS = {
    KILL_PART: 4,
    GRACEFUL_STOP: 2,
    BROKER_PAUSE: 1,
    BROKER_RESTART: 1,
    POSTGRES_RESTART: 1,
    POSTGRES_PAUSE: 1,
    POISON: 2,
    **dict.fromkeys(PROVIDER_KINDS, 1),
    RISK_CHANGE: 2,
    POLICY_REORDER: 1,
}
# The workload runs alone this long before the first fault.
LEAD_IN_S = 4.0
# Up to this much random slack before each fault.
JITTER_S = 2.0


@dataclass(frozen=True)
class Fault:
    """One fault: `at` seconds into the window, of `kind`, on `target`, lasting `duration` s;
    `retry_after` is what a throttling Twilio answers with."""

    at: float
    kind: str
    target: str
    duration: float
    retry_after: float | None = None

    @property
    def label(self) -> str:
        """What a report calls it, e.g. `kill_part(streams-2)`, `twilio_429(retry 3600s)`."""
        if self.retry_after is not None:
            return f"{self.kind}(retry {self.retry_after:g}s)"
        return f"{self.kind}({self.target})" if self.target else self.kind


@dataclass(frozen=True)
class Window:
    """A fault as it happened: label, and its start and end (epoch seconds); `target` is the
    replica it hit, if any."""

    label: str
    kind: str
    start: float
    end: float
    detail: str = ""
    target: str = ""


def schedule(
    seed: int,
    window_s: float,
    parts: list[str],
    kinds: Sequence[str] = KINDS,
    minute_s: float = 60.0,
    cover_parts: bool = False,
) -> list[Fault]:
    """The faults of a run: every one of `kinds` once in a seeded order (a kind that no longer
    fits is skipped), then seeded picks while they fit in `window_s`; `parts` are what a kill
    may hit (a graceful stop, the workers among them); `minute_s` is how long a minute of a
    Twilio storm lasts. With `cover_parts`, the first round holds each kind that hits a replica
    once for every part it may hit (a stop of a streams worker and one of a dispatcher)."""
    if not parts:
        raise ValueError("schedule needs at least one part to kill")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    first: list[tuple[str, list[str]]] = []
    for kind in kinds:
        targets = _targets(kind, parts)
        if targets is not None and not targets:
            continue  # no replica this kind may hit
        if cover_parts and targets:
            groups = sorted({t.rsplit("-", 1)[0] for t in targets})
            first += [(kind, [t for t in targets if t.rsplit("-", 1)[0] == g]) for g in groups]
        else:
            first.append((kind, targets or []))
    rng.shuffle(first)
    faults: list[Fault] = []
    t = LEAD_IN_S
    for kind, targets in first:
        fault = _fault(rng, kind, t, targets, minute_s)
        if settled_at(fault) <= window_s:
            faults.append(fault)
            t = settled_at(fault)
    weights = {k: WEIGHTS[k] for k, _ in first}
    while weights:
        kind = rng.choices(list(weights), list(weights.values()))[0]
        fault = _fault(rng, kind, t, _targets(kind, parts) or [], minute_s)
        if settled_at(fault) > window_s:
            return faults
        faults.append(fault)
        t = settled_at(fault)
    return faults


def _targets(kind: str, parts: list[str]) -> list[str] | None:
    """The replicas a fault of `kind` may hit; None for a fault that hits none."""
    if kind == KILL_PART:
        return list(parts)
    if kind == GRACEFUL_STOP:
        return [p for p in parts if p.rsplit("-", 1)[0] in WORKER_PARTS]
    return None


def _fault(rng: random.Random, kind: str, t: float, targets: list[str], minute_s: float) -> Fault:
    at = round(t + rng.uniform(0.0, JITTER_S), 2)
    target = rng.choice(targets) if targets else ""
    if kind in STORM_KINDS:
        duration = round(rng.uniform(*STORM_MINUTES) * minute_s, 1)
    else:
        duration = DURATIONS.get(kind, 0.0)
    retry_after = rng.choice(RETRY_AFTERS_S) if kind == TWILIO_429_RETRY_AFTER else None
    return Fault(at, kind, target, duration, retry_after)


def settled_at(fault: Fault) -> float:
    """When the next fault may begin: this one's end plus its recovery gap."""
    return fault.at + fault.duration + GAPS[fault.kind]
