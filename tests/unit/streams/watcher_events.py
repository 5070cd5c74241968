"""Builders and constants for the watchers' rule tests: the events a child's day brings, and
what to read back from the actions the rules return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from goldenhour.contracts.config import Watchers
from goldenhour.contracts.events import (
    AbsenceReported,
    CheckinRecorded,
    ChildIdentified,
    ChildLocated,
    PlacementStarted,
    RiskSignal,
)
from goldenhour.streams.watchers import (
    Action,
    Arm,
    Cancel,
    ChildState,
    PlacementState,
    Raise,
    Resolve,
    SetRisk,
    on_timer,
)

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

DEFAULTS = Watchers()  # the documented defaults: 60m, 15m grace, 1m unit, 90d, 3, 48h, 72h
W = Watchers(checkin_interval_unit="1s")  # as the tests and demos run it

SPRING = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 01:00 GMT -> 02:00 BST
AUTUMN = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 BST -> 01:00 GMT

SIGNALS = (
    "trafficker_contact",
    "unknown_visitor",
    "new_phone",
    "unexplained_money",
    "absent_from_education",
    "other",
)
ORDINARY_SIGNALS = SIGNALS[1:]


# --- builders ---------------------------------------------------------------------------


def placement(
    interval: int | None = None, curfew: str | None = None, started_at: datetime = T0
) -> PlacementState:
    return PlacementState("P-1", "OAK", started_at, interval, curfew)


def child(risk: str = "high", **kw) -> ChildState:
    return ChildState(risk_level=risk, **kw)


def identified() -> ChildIdentified:
    return ChildIdentified.model_validate({"risk_level": "high", "local_authority": "LBH"})


def placed(interval: int | None = None, curfew: str | None = None) -> PlacementStarted:
    return PlacementStarted.model_validate(
        {
            "placement_id": "P-1",
            "care_home": "OAK",
            "checkin_interval_minutes": interval,
            "curfew": curfew,
        }
    )


def checked_in(seen_at: datetime | None = None) -> CheckinRecorded:
    return CheckinRecorded.model_validate({"placement_id": "P-1", "seen_at": seen_at})


def absent(last_seen_at: datetime) -> AbsenceReported:
    return AbsenceReported.model_validate({"last_seen_at": last_seen_at, "placement_id": "P-1"})


def located(located_at: datetime, status: str | None) -> ChildLocated:
    return ChildLocated.model_validate({"located_at": located_at, "status": status})


def signal(kind: str, detail: str | None = None) -> RiskSignal:
    return RiskSignal.model_validate({"kind": kind, "detail": detail})


def of(actions: list[Action], cls: type) -> list:
    return [a for a in actions if isinstance(a, cls)]


def armed(actions: list[Action], kind: str) -> list[Arm]:
    return [a for a in of(actions, Arm) if a.kind == kind]


def cancelled(actions: list[Action]) -> set[str]:
    return {a.kind for a in of(actions, Cancel)}


def resolved(actions: list[Action]) -> set[str]:
    return {k for a in of(actions, Resolve) for k in a.kinds}


def raised_kinds(actions: list[Action]) -> list[str]:
    return [a.kind for a in of(actions, Raise)]


def new_risk(actions: list[Action]) -> list[str]:
    return [a.level for a in of(actions, SetRisk)]


def curfew_timer(
    curfew_at: datetime, state: ChildState, late: timedelta = 0 * S, w: Watchers = W
) -> list[Action]:
    """The curfew clock set for `curfew_at` runs out (`late` after its due time)."""
    due = curfew_at + w.checkin_grace
    data = {"curfew_at": curfew_at.isoformat()}
    return on_timer("curfew", due, data, state, w, LONDON, due + late)
