"""The golden-hour escalation clock: which steps are due, who is told, what is skipped.

Pure logic: data and `now` in, decisions out. No I/O here; `streams.clock_store` applies the
decisions to Postgres in one transaction.

The rules, as DESIGN.md states them:
- The clock is anchored at `last_seen_at` (the alert's `anchor_at`), not at the report. A late
  report fires every step already due at once, in order, and a contact due several catch-up
  messages gets one.
- A step with `unless_acknowledged` is skipped when the alert was acknowledged before it fell due.
- Unacknowledged recipients are re-notified every `renotify_every`, up to `renotify_max` times,
  counted from the alert's first notification. An acknowledgement stops re-notification.
- Steps without `unless_acknowledged` (sharing, the golden-hour-expired step) fire regardless.
- "Escalate now" (a duty manager's button) fires the next step not yet due at once, even after an
  acknowledgement: a person asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


class StepSpec(Protocol):
    """The parts of a configured policy step the clock reads."""

    after: timedelta
    notify: list[str]
    channels: list[str]
    unless_acknowledged: bool
    share: str | None


class PolicySpec(Protocol):
    """The parts of a configured policy the clock reads."""

    steps: list[StepSpec]
    renotify_every: timedelta | None
    renotify_max: int


@dataclass(frozen=True)
class ClockState:
    """What the clock needs to know of one alert."""

    anchor_at: datetime
    acknowledged: bool
    resolved: bool
    decided: frozenset[str]  # step keys already fired or skipped
    first_fired_at: datetime | None
    renotify_done: int
    escalate: bool = False  # someone asked to fire the next step now


@dataclass(frozen=True)
class Plan:
    """The clock's decision at one instant."""

    fire: tuple[int, ...] = ()  # policy step indexes to fire now, in order
    skip: tuple[int, ...] = ()  # unless_acknowledged steps due after an acknowledgement
    renotify_round: int | None = None  # the re-notification round to send now, if any
    next_due_at: datetime | None = None  # when to look again; None: nothing left
    escalated: int | None = None  # the step fired early on request, also listed in `fire`

    @property
    def empty(self) -> bool:
        return not self.fire and not self.skip and self.renotify_round is None


def step_key(index: int) -> str:
    """The stable key of a policy step, used in idempotency keys."""
    return f"s{index}"


def renotify_key(round_: int) -> str:
    """The stable key of a re-notification round."""
    return f"r{round_}"


def plan(policy: PolicySpec, state: ClockState, now: datetime) -> Plan:
    """Decide what is due for one alert at `now`."""
    if state.resolved:
        return Plan()
    fire: list[int] = []
    skip: list[int] = []
    pending: list[tuple[datetime, int]] = []
    for index, step in enumerate(policy.steps):
        if step_key(index) in state.decided:
            continue
        due_at = state.anchor_at + step.after
        if due_at > now:
            pending.append((due_at, index))
        elif step.unless_acknowledged and state.acknowledged:
            skip.append(index)
        else:
            fire.append(index)
    escalated = None
    if state.escalate and pending:
        pending.sort()
        escalated = pending.pop(0)[1]
        fire.append(escalated)
    pending_due = [due_at for due_at, _ in pending]

    first_fired_at = state.first_fired_at
    if first_fired_at is None and any(policy.steps[i].notify for i in fire):
        first_fired_at = now
    renotify_round, renotify_next = _renotify(policy, state, first_fired_at, now)
    if renotify_next is not None:
        pending_due.append(renotify_next)
    return Plan(
        fire=tuple(fire),
        skip=tuple(skip),
        renotify_round=renotify_round,
        next_due_at=min(pending_due, default=None),
        escalated=escalated,
    )


def _renotify(
    policy: PolicySpec, state: ClockState, first_fired_at: datetime | None, now: datetime
) -> tuple[int | None, datetime | None]:
    """The round due now (catch-up collapses missed rounds into one) and the next round's time."""
    every = policy.renotify_every
    if state.acknowledged or first_fired_at is None or not every or policy.renotify_max <= 0:
        return None, None
    elapsed_rounds = min(int((now - first_fired_at) / every), policy.renotify_max)
    due_round = elapsed_rounds if elapsed_rounds > state.renotify_done else None
    done = max(state.renotify_done, elapsed_rounds)
    next_at = first_fired_at + every * (done + 1) if done < policy.renotify_max else None
    return due_round, next_at


@dataclass(frozen=True)
class Recipient:
    """One contact in the directory, as the clock needs it."""

    contact_id: str
    org_code: str
    phone: str
    email: str


@dataclass(frozen=True)
class Delivery:
    """One message to send: to whom, over which channel, for which step."""

    recipient: Recipient
    channel: str
    step_key: str


@dataclass
class _Deliveries:
    seen: set[tuple[str, str]] = field(default_factory=set)
    items: list[Delivery] = field(default_factory=list)

    def add(self, recipient: Recipient, channel: str, key: str) -> None:
        if (recipient.contact_id, channel) in self.seen:
            return
        self.seen.add((recipient.contact_id, channel))
        self.items.append(Delivery(recipient, channel, key))


def deliveries(
    policy: PolicySpec,
    decision: Plan,
    resolve: Callable[[str], Sequence[Recipient]],
    already_told: Iterable[tuple[Recipient, str]] = (),
) -> list[Delivery]:
    """Who gets what for a plan: one message per contact and channel, first step wins.

    `resolve` turns a `kind.role` into the contacts it names for this child; `already_told`
    lists the (recipient, channel) pairs told earlier, the audience of a re-notification.
    """
    out = _Deliveries()
    for index in decision.fire:
        step = policy.steps[index]
        for target in step.notify:
            for recipient in resolve(target):
                for channel in step.channels:
                    out.add(recipient, channel, step_key(index))
    if decision.renotify_round is not None:
        for recipient, channel in already_told:
            out.add(recipient, channel, renotify_key(decision.renotify_round))
    return out.items
