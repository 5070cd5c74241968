"""The golden-hour escalation clock: which steps are due, who is told, what is skipped.

Pure logic: data and `now` in, decisions out. No I/O here: `plan` decides what is due, `allot`
who is told and what the alert's timeline records of it, and `streams.clock_store` writes that
to Postgres in one transaction.

The rules, as DESIGN.md states them:
- The clock is anchored at `last_seen_at` (the alert's `anchor_at`), not at the report, but never
  later than the report was accepted. A late report fires every step already due at once, in
  order, and a contact due several catch-up messages gets one.
- A step with `unless_acknowledged` is skipped when the alert was acknowledged before it fell due.
- Unacknowledged recipients are re-notified every `renotify_every`, up to `renotify_max` times,
  counted from the alert's first notification. An acknowledgement stops re-notification.
- Steps without `unless_acknowledged` (sharing, the golden-hour-expired step) fire regardless.
- "Escalate now" (a duty manager's button) fires the next step not yet due at once, even after an
  acknowledgement: a person asked for it.
- Steps are known by their stable keys, never their position. When the risk, and so the policy,
  of an open alert changes, every step of the new policy already due and not decided under any
  policy fires at once (the catch-up rule); one that fell due before the change tells nobody
  the alert already told on that channel, and what it withholds is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from goldenhour.contracts.alert_kinds import renotify_key
from goldenhour.wording import steps as wording


class StepSpec(Protocol):
    """The parts of a configured policy step the clock reads."""

    after: timedelta
    notify: list[str]
    channels: list[str]
    unless_acknowledged: bool
    share: str | None

    @property
    def key(self) -> str:
        """The step's stable identity (never its position)."""
        ...


class PolicySpec(Protocol):
    """The parts of a configured policy the clock reads."""

    steps: Sequence[StepSpec]
    renotify_every: timedelta | None
    renotify_max: int


@dataclass(frozen=True)
class ClockState:
    """What the clock needs to know of one alert."""

    anchor_at: datetime
    acknowledged: bool
    resolved: bool
    decided: frozenset[str]  # step keys already fired or skipped, under any policy
    first_fired_at: datetime | None
    renotify_done: int
    escalate: bool = False  # someone asked to fire the next step now
    # When the alert's current policy came into force (a risk change); None: from the start.
    policy_since: datetime | None = None
    escalated_by: str | None = None  # who asked, for the timeline


@dataclass(frozen=True)
class Plan:
    """The clock's decision at one instant."""

    fire: tuple[str, ...] = ()  # keys of the policy's steps to fire now, in order
    skip: tuple[str, ...] = ()  # unless_acknowledged steps due after an acknowledgement
    renotify_round: int | None = None  # the re-notification round to send now, if any
    next_due_at: datetime | None = None  # when to look again; None: nothing left
    escalated: str | None = None  # the step fired early on request, also listed in `fire`
    # Steps of `fire` that fell due before the current policy came into force: catching up
    # after a risk change, they tell nobody the alert already told on that channel.
    catch_up: tuple[str, ...] = ()
    # When the alert first notified anyone, now included: re-notification counts from it.
    first_fired_at: datetime | None = None
    fired_notify: bool = False  # a step of `fire` notifies someone
    # What the timeline records of the decided steps needs: the clock's anchor, the instant
    # decided at, and who asked for the escalation.
    anchor_at: datetime | None = None
    decided_at: datetime | None = None
    escalated_by: str | None = None

    @property
    def empty(self) -> bool:
        return not self.fire and not self.skip and self.renotify_round is None

    @property
    def wants_told(self) -> bool:
        """Whether `allot` needs whom the alert told already: a re-notification reminds them,
        and a catch-up step does not tell them again."""
        return self.renotify_round is not None or bool(self.catch_up)


_LEGACY_KEY = re.compile(r"s(\d+)")


def legacy_keys(policy: PolicySpec, keys: Iterable[str]) -> dict[str, str]:
    """The stable keys of steps recorded by position (`s0`, `s1`…) before steps had stable
    keys: each stands for the step at that index of the policy that decided it."""
    out = {}
    for key in keys:
        found = _LEGACY_KEY.fullmatch(key)
        if found and int(found[1]) < len(policy.steps):
            out[key] = policy.steps[int(found[1])].key
    return out


def step_of(policy: PolicySpec, key: str) -> StepSpec:
    """The policy's step with this key."""
    for step in policy.steps:
        if step.key == key:
            return step
    raise KeyError(f"step {key!r} is not in the policy")


def first_step_key(policy: PolicySpec) -> str:
    """The key of the policy's first step: its messages carry the alert's headline."""
    return policy.steps[0].key


def anchor(last_seen_at: datetime, received_at: datetime) -> tuple[datetime, timedelta | None]:
    """Where an absence's clock starts: the last-seen time, but never after the report was
    accepted (a reporting phone with a fast clock must not delay the first alert). The second
    value is how far ahead of the report the given time was, when it was."""
    if last_seen_at > received_at:
        return received_at, last_seen_at - received_at
    return last_seen_at, None


def plan(policy: PolicySpec, state: ClockState, now: datetime) -> Plan:
    """Decide what is due for one alert at `now`.

    Steps are known by their keys: one decided under any policy (before a risk change, or a
    deploy that reordered the steps) is never decided again, and every other one due fires."""
    if state.resolved:
        return Plan()
    fire: list[str] = []
    skip: list[str] = []
    catch_up: list[str] = []
    pending: list[tuple[datetime, int, str]] = []
    for index, step in enumerate(policy.steps):
        if step.key in state.decided:
            continue
        due_at = state.anchor_at + step.after
        if due_at > now:
            pending.append((due_at, index, step.key))
        elif step.unless_acknowledged and state.acknowledged:
            skip.append(step.key)
        else:
            fire.append(step.key)
            if state.policy_since is not None and due_at < state.policy_since:
                catch_up.append(step.key)
    escalated = None
    if state.escalate and pending:
        pending.sort()
        escalated = pending.pop(0)[2]
        fire.append(escalated)
    pending_due = [due_at for due_at, _, _ in pending]

    fired_notify = any(step_of(policy, k).notify for k in fire)
    first_fired_at = state.first_fired_at
    if first_fired_at is None and fired_notify:
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
        catch_up=tuple(catch_up),
        first_fired_at=first_fired_at,
        fired_notify=fired_notify,
        anchor_at=state.anchor_at,
        decided_at=now,
        escalated_by=state.escalated_by,
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


@dataclass(frozen=True)
class StepRow:
    """One decided step as the alert's timeline records it."""

    key: str
    due_at: datetime
    status: str  # fired or skipped
    decided_at: datetime
    detail: str


@dataclass
class Allotment:
    """Who gets what for a plan, what a catch-up step withheld (per step key, the (contact,
    channel) pairs it did not tell because the alert had told them already) and the timeline's
    rows for the decided steps."""

    items: list[Delivery] = field(default_factory=list)
    withheld: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    steps: list[StepRow] = field(default_factory=list)

    def told(self, key: str) -> list[str]:
        """Whom the step `key` tells, as `contact/channel`, in order."""
        return [f"{d.recipient.contact_id}/{d.channel}" for d in self.items if d.step_key == key]

    def add(self, recipient: Recipient, channel: str, key: str) -> None:
        if (recipient.contact_id, channel) in self.seen:
            return
        self.seen.add((recipient.contact_id, channel))
        self.items.append(Delivery(recipient, channel, key))


def allot(
    policy: PolicySpec,
    decision: Plan,
    resolve: Callable[[str], Sequence[Recipient]],
    already_told: Iterable[tuple[Recipient, str]] = (),
) -> Allotment:
    """Who gets what for a plan: one message per contact and channel, first step wins.

    `resolve` turns a `kind.role` into the contacts it names for this child; `already_told`
    lists the (recipient, channel) pairs the alert told earlier: the audience of a
    re-notification, and those a catch-up step (due before a risk change) does not tell again.
    """
    told = list(already_told)
    told_pairs = {(r.contact_id, channel) for r, channel in told}
    out = Allotment()
    for key in decision.fire:
        step = step_of(policy, key)
        for target in step.notify:
            for recipient in resolve(target):
                for channel in step.channels:
                    pair = (recipient.contact_id, channel)
                    if key in decision.catch_up and pair in told_pairs:
                        if pair not in out.withheld.setdefault(key, []):
                            out.withheld[key].append(pair)
                        continue
                    out.add(recipient, channel, key)
    if decision.renotify_round is not None:
        for recipient, channel in told:
            out.add(recipient, channel, renotify_key(decision.renotify_round))
    out.steps = _step_rows(policy, decision, out)
    return out


def _step_rows(policy: PolicySpec, decision: Plan, allotted: Allotment) -> list[StepRow]:
    """The timeline's rows for what `decision` decided: fired steps with whom they told,
    skipped ones, and the re-notification round."""
    if decision.empty or decision.anchor_at is None or decision.decided_at is None:
        return []
    anchor_at, now = decision.anchor_at, decision.decided_at
    rows = []
    for key in decision.fire:
        step = step_of(policy, key)
        detail = wording.fired(
            allotted.told(key),
            allotted.withheld.get(key, ()),
            shared=bool(step.share),
            escalated=key == decision.escalated,
            by=decision.escalated_by,
        )
        rows.append(StepRow(key, anchor_at + step.after, "fired", now, detail))
    for key in decision.skip:
        due_at = anchor_at + step_of(policy, key).after
        rows.append(StepRow(key, due_at, "skipped", now, wording.SKIPPED))
    if decision.renotify_round is not None:
        key = renotify_key(decision.renotify_round)
        rows.append(StepRow(key, now, "fired", now, wording.renotified(allotted.told(key))))
    return rows


def deliveries(
    policy: PolicySpec,
    decision: Plan,
    resolve: Callable[[str], Sequence[Recipient]],
    already_told: Iterable[tuple[Recipient, str]] = (),
) -> list[Delivery]:
    """The messages of `allot`, without what it withheld."""
    return allot(policy, decision, resolve, already_told).items
