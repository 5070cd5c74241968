"""Placement-risk watchers: act before a child goes missing. Pure rules, `now` passed in.

DESIGN.md rules 1, 2 and 6, as decisions on events and on clocks running out:
- `child.identified` starts the identification golden hour; `placement.started` stops it; if it
  runs out the duty manager and police are alerted.
- A placement with a check-in interval expects a check-in at least that often; after the interval
  and a grace period a welfare concern goes to the care home manager and the social worker. A
  curfew expects a check-in after the curfew time. A check-in or an absence report closes the
  concern.
- Risk signals raise the child's risk; contact from a trafficker alerts police and the duty manager
  at once. Three missing episodes in 90 days raise the child to high and prompt a strategy meeting.
- A child located (returned or found safe) is due a return home interview in 72 hours, with a
  reminder at 48 hours; `return_interview.completed` stops both.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from goldenhour.contracts.events import (
    ChildIdentified,
    ChildLocated,
    PlacementStarted,
    RiskSignal,
)

RISK_ORDER = ("low", "medium", "high")
INTERVIEW_STATUSES = frozenset({"returned", "found_safe"})
CONCERNS = ("missed_checkin", "curfew")


class WatcherSettings(Protocol):
    """The `watchers:` block of the config file."""

    placement_within: timedelta
    checkin_grace: timedelta
    concern_escalate_after: timedelta
    checkin_interval_unit: timedelta
    episodes_window: timedelta
    episodes_threshold: int
    return_interview_reminder: timedelta
    return_interview_due: timedelta


@dataclass(frozen=True)
class PlacementState:
    """The child's current placement, as the watchers need it."""

    placement_id: str
    care_home: str
    started_at: datetime
    checkin_interval_minutes: int | None = None
    curfew: str | None = None  # "HH:MM", local time


@dataclass(frozen=True)
class ChildState:
    """What the watchers know of one child when an event arrives or a clock runs out."""

    risk_level: str
    placement: PlacementState | None = None
    last_checkin_at: datetime | None = None
    missing: bool = False  # a missing alert is live
    episodes: tuple[datetime, ...] = ()  # when earlier missing episodes began
    strategy_prompted_at: datetime | None = None  # the latest strategy-meeting prompt
    identified_at: datetime | None = None  # the first identification


# --- decisions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """Start (or restart) the child's clock of this kind."""

    kind: str
    due_at: datetime
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Cancel:
    """Stop the child's clock of this kind, if it runs."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Raise:
    """Open an alert of this kind, unless one is live already."""

    kind: str
    anchor_at: datetime
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Resolve:
    """Close the child's live alerts of these kinds."""

    kinds: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SetRisk:
    """The child's new risk level; an open alert's later steps follow it."""

    level: str
    reason: str


Action = Arm | Cancel | Raise | Resolve | SetRisk


# --- pure helpers -----------------------------------------------------------------------


def raised(level: str, steps: int = 1) -> str:
    """`level` raised by `steps`, never above high."""
    return RISK_ORDER[min(RISK_ORDER.index(level) + steps, len(RISK_ORDER) - 1)]


def episodes_in_window(
    starts: list[datetime] | tuple[datetime, ...], now: datetime, window: timedelta
) -> int:
    """Missing episodes that began within `window` up to `now` (a sliding window)."""
    ordered = sorted(starts)
    return bisect.bisect_right(ordered, now) - bisect.bisect_left(ordered, now - window)


def local_instant(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """The instant `hhmm` on `day` in `tz`. A time skipped by the spring clock change is taken
    after the gap; a time repeated in autumn is taken the first time it happens."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    naive = datetime.combine(day, time(hour, minute))
    # PEP 495 fold=0 reads the wall time with the offset in force before a change: a time in the
    # spring gap lands after it (01:30 -> 02:30 BST), a repeated autumn time is its first
    # occurrence. (fold=1 would put a gap time an hour *before* the wall time: 01:30 -> 00:30 GMT.)
    return naive.replace(tzinfo=tz, fold=0).astimezone(ZoneInfo("UTC"))


def next_curfew(after: datetime, hhmm: str, tz: ZoneInfo) -> datetime:
    """The first curfew instant strictly after `after`."""
    day = after.astimezone(tz).date()
    for offset in range(3):
        candidate = local_instant(day + timedelta(days=offset), hhmm, tz)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a curfew happens every day")


def checkin_deadline(state: ChildState, w: WatcherSettings) -> datetime | None:
    """When a welfare concern is due if no check-in comes; None if none is expected."""
    placement = state.placement
    if placement is None or not placement.checkin_interval_minutes:
        return None
    since = max(filter(None, (state.last_checkin_at, placement.started_at)))
    return since + placement.checkin_interval_minutes * w.checkin_interval_unit + w.checkin_grace


def _expect_checkins(state: ChildState, w: WatcherSettings) -> list[Action]:
    """The check-in clock of a child who is where they should be, if check-ins are expected."""
    deadline = checkin_deadline(state, w)
    return [Arm("checkin", deadline)] if deadline is not None else []


def _curfew_clock(
    placement: PlacementState, after: datetime, w: WatcherSettings, tz: ZoneInfo
) -> Arm:
    curfew_at = next_curfew(after, placement.curfew or "00:00", tz)
    return Arm("curfew", curfew_at + w.checkin_grace, {"curfew_at": curfew_at.isoformat()})


# --- on events --------------------------------------------------------------------------

D = TypeVar("D", bound=BaseModel)


def _as(data: BaseModel, model: type[D], event_type: str) -> D:
    """`data` as the model its event type carries (the event's own validation matched them)."""
    if not isinstance(data, model):
        raise TypeError(f"{event_type} carries {type(data).__name__}, not {model.__name__}")
    return data


def on_event(
    event_type: str,
    data: BaseModel,
    occurred_at: datetime,
    state: ChildState,
    w: WatcherSettings,
    tz: ZoneInfo,
) -> list[Action]:
    """The watchers' decisions on one intake event (`state` is after the API recorded it)."""
    actions: list[Action]
    if event_type == "child.identified":
        # A later identification (a new risk assessment) changes the risk but never restarts
        # the golden hour: it runs from the first.
        identified = _as(data, ChildIdentified, event_type)
        actions = [SetRisk(str(identified.risk_level), "identification")]
        if state.placement is None:
            first = state.identified_at or occurred_at
            actions.append(
                Arm(
                    "identification",
                    first + w.placement_within,
                    {"identified_at": first.isoformat()},
                )
            )
        return actions
    if event_type == "placement.started":
        placed = _as(data, PlacementStarted, event_type)
        risk = placed.risk.level if placed.risk else None
        actions = [SetRisk(str(risk), "placement risk assessment")] if risk else []
        actions += [
            Cancel("identification", "placement recorded"),
            Resolve(("identification",), "placement recorded"),
            Cancel("checkin", "new placement"),
            Cancel("curfew", "new placement"),
        ]
        actions += _expect_checkins(state, w)
        if state.placement is not None and state.placement.curfew:
            actions.append(_curfew_clock(state.placement, occurred_at, w, tz))
        return actions
    if event_type == "placement.ended":
        return [
            Cancel("checkin", "placement ended"),
            Cancel("curfew", "placement ended"),
            Resolve(CONCERNS, "placement ended"),
        ]
    if event_type == "checkin.recorded":
        actions = [Resolve(CONCERNS, "check-in recorded")]
        return actions + _expect_checkins(state, w)
    if event_type == "absence.reported":
        # While the child is missing no check-in is expected: the missing alert has the case.
        return [Resolve(CONCERNS, "absence reported"), Cancel("checkin", "absence reported")]
    if event_type == "child.located":
        found = _as(data, ChildLocated, event_type)
        status = found.status.value if found.status is not None else None
        located_at = found.located_at
        actions = []
        if status in INTERVIEW_STATUSES:
            actions.append(
                Arm(
                    "return_interview",
                    located_at + w.return_interview_reminder,
                    {
                        "located_at": located_at.isoformat(),
                        "due_at": (located_at + w.return_interview_due).isoformat(),
                    },
                )
            )
        if status not in INTERVIEW_STATUSES:
            return actions  # found harmed or in custody: not back at the placement yet
        back = ChildState(state.risk_level, state.placement, located_at)
        return actions + _expect_checkins(back, w)
    if event_type == "return_interview.completed":
        return [
            Cancel("return_interview", "interview completed"),
            Resolve(("return_interview",), "interview completed"),
        ]
    if event_type == "risk.signal":
        return on_risk_signal(_as(data, RiskSignal, event_type), occurred_at, state)
    return []


def on_risk_signal(data: RiskSignal, occurred_at: datetime, state: ChildState) -> list[Action]:
    """Every signal raises the risk a level; contact from a trafficker makes it high and alerts."""
    kind = data.kind.value
    if kind == "trafficker_contact":
        actions: list[Action] = []
        if state.risk_level != "high":
            actions.append(SetRisk("high", "trafficker contact"))
        detail = data.detail
        # Each contact is news: an earlier, acknowledged alert must not swallow this one.
        return actions + [
            Resolve(("risk_signal",), "a newer trafficker contact was reported"),
            Raise("risk_signal", occurred_at, {"signal": kind, "detail": detail or ""}),
        ]
    new = raised(state.risk_level)
    return [SetRisk(new, f"risk signal: {kind}")] if new != state.risk_level else []


def on_new_episode(began_at: datetime, state: ChildState, w: WatcherSettings) -> list[Action]:
    """A new missing episode: at the threshold within the window, high risk and a strategy
    meeting (prompted once per window)."""
    count = episodes_in_window(state.episodes + (began_at,), began_at, w.episodes_window)
    if count < w.episodes_threshold:
        return []
    actions: list[Action] = []
    if state.risk_level != "high":
        actions.append(SetRisk("high", f"{count} missing episodes"))
    prompted = state.strategy_prompted_at
    if prompted is None or prompted < began_at - w.episodes_window:
        # An earlier prompt, acknowledged and still open, must not swallow this one.
        actions.append(Resolve(("strategy_meeting",), "a new window of repeat episodes"))
        actions.append(
            Raise(
                "strategy_meeting",
                began_at,
                {"episodes": count, "window": _span(w.episodes_window)},
            )
        )
    return actions


def _span(span: timedelta) -> str:
    """A window as people say it: "90 days", or seconds in a scaled-down test."""
    if span >= timedelta(days=1):
        return f"{span.days} days"
    return f"{int(span.total_seconds())} seconds"


# --- on clocks running out ------------------------------------------------------------


def on_timer(
    kind: str,
    due_at: datetime,
    data: dict,
    state: ChildState,
    w: WatcherSettings,
    tz: ZoneInfo,
    now: datetime,
) -> list[Action]:
    """The watchers' decisions when a clock of `kind` runs out."""
    if kind == "identification":
        if state.placement is not None:
            return []
        return [Raise("identification", due_at, dict(data))]
    if kind == "checkin":
        deadline = checkin_deadline(state, w)
        if deadline is None or state.missing:
            return []
        if deadline > now:  # a check-in came after this clock was set
            return [Arm("checkin", deadline)]
        return [
            Raise(
                "missed_checkin",
                deadline,
                {
                    "last_checkin_at": (
                        state.last_checkin_at or state.placement.started_at
                    ).isoformat()
                    if state.placement
                    else None,
                },
            )
        ]
    if kind == "curfew":
        placement = state.placement
        if placement is None or not placement.curfew:
            return []
        curfew_at = datetime.fromisoformat(data["curfew_at"])
        actions: list[Action] = [_curfew_clock(placement, curfew_at, w, tz)]
        checked_in = state.last_checkin_at is not None and state.last_checkin_at >= curfew_at
        if not checked_in and not state.missing:
            actions.append(
                # Anchored when the concern is raised, after the grace, so the duty manager
                # hears `concern_escalate_after` later, as for a missed check-in.
                Raise(
                    "curfew",
                    due_at,
                    {"curfew": placement.curfew, "curfew_at": data["curfew_at"]},
                )
            )
        return actions
    if kind == "return_interview":
        # Every return is due its own interview, even while an earlier one is still owed.
        return [
            Resolve(("return_interview",), "a newer return is due its interview"),
            Raise("return_interview", due_at, dict(data)),
        ]
    return []
