"""Placement-risk watchers (DESIGN.md rules 1, 2 and 6) as pure rules: events and clocks in,
decisions out. Every instant is UTC; curfews are local wall times in Europe/London."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from goldenhour.contracts.config import Watchers
from goldenhour.contracts.events import (
    AbsenceReported,
    CheckinRecorded,
    ChildIdentified,
    ChildLocated,
    PlacementEnded,
    PlacementStarted,
    ReturnInterviewCompleted,
    RiskSignal,
)
from goldenhour.streams.watchers import (
    CONCERNS,
    RISK_ORDER,
    Action,
    Arm,
    Cancel,
    ChildState,
    PlacementState,
    Raise,
    Resolve,
    SetRisk,
    checkin_deadline,
    episodes_in_window,
    local_instant,
    next_curfew,
    on_event,
    on_new_episode,
    on_risk_signal,
    on_timer,
    raised,
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


# --- 1. identification: a safe placement within the hour ---------------------------------


@pytest.mark.parametrize("within", [timedelta(minutes=60), timedelta(minutes=5), 30 * S])
def test_identified_without_placement_starts_the_identification_hour(within):
    w = Watchers(placement_within=within)
    actions = on_event("child.identified", identified(), T0, child(), w, LONDON)
    arms = [a for a in actions if isinstance(a, Arm)]
    assert arms == [Arm("identification", T0 + within, {"identified_at": T0.isoformat()})]


def test_identified_at_22_00_is_due_a_placement_by_23_00():
    at = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    actions = on_event("child.identified", identified(), at, child(), DEFAULTS, LONDON)
    (arm,) = [a for a in actions if isinstance(a, Arm)]
    assert arm.due_at == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)


def test_a_second_identification_never_restarts_the_golden_hour():
    first = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    state = child(identified_at=first)
    actions = on_event("child.identified", identified(), first + 40 * M, state, DEFAULTS, LONDON)
    (arm,) = [a for a in actions if isinstance(a, Arm)]
    assert arm.due_at == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)


def test_identification_sets_the_assessed_risk():
    actions = on_event("child.identified", identified(), T0, child(), DEFAULTS, LONDON)
    assert [a for a in actions if isinstance(a, SetRisk)][0].level == "high"


def test_identified_already_placed_starts_no_clock():
    state = child(placement=placement())
    actions = on_event("child.identified", identified(), T0, state, DEFAULTS, LONDON)
    assert not [a for a in actions if isinstance(a, Arm)]


@pytest.mark.parametrize(
    "where", [placement(), placement(60), placement(None, "22:00"), placement(30, "21:30")]
)
def test_placement_stops_the_identification_hour_and_closes_its_alert(where):
    state = child(placement=where)
    actions = on_event("placement.started", placed(), T0 + 10 * M, state, W, LONDON)
    assert "identification" in cancelled(actions)
    assert "identification" in resolved(actions)
    assert "identification" not in raised_kinds(actions)


def test_identification_clock_raises_when_still_no_placement():
    due = T0 + H
    data = {"identified_at": T0.isoformat()}
    actions = on_timer("identification", due, data, child(), DEFAULTS, LONDON, due)
    assert actions == [Raise("identification", due, data)]


@pytest.mark.parametrize("late", [0 * S, 1 * S, 10 * M, D])
def test_identification_clock_is_silent_once_placed(late):
    due = T0 + H
    state = child(placement=placement(started_at=T0 + 59 * M))
    data = {"identified_at": T0.isoformat()}
    assert on_timer("identification", due, data, state, DEFAULTS, LONDON, due + late) == []


# --- 2. missed check-in -----------------------------------------------------------------


@pytest.mark.parametrize("interval", [1, 30, 60, 240, 10080])
@pytest.mark.parametrize("w", [W, DEFAULTS], ids=["unit=1s", "unit=1m"])
def test_placement_with_interval_expects_a_checkin_after_interval_and_grace(interval, w):
    state = child(placement=placement(interval))
    actions = on_event("placement.started", placed(interval), T0, state, w, LONDON)
    (arm,) = armed(actions, "checkin")
    assert arm.due_at == T0 + interval * w.checkin_interval_unit + w.checkin_grace
    assert {"checkin", "curfew"} <= cancelled(actions)  # the old placement's clocks stop


def test_placement_without_interval_expects_no_checkin():
    state = child(placement=placement())
    actions = on_event("placement.started", placed(), T0, state, W, LONDON)
    assert armed(actions, "checkin") == []
    assert armed(actions, "curfew") == []


def test_checkin_interval_in_seconds_as_tests_run_it():
    state = child(placement=placement(90))
    assert checkin_deadline(state, W) == T0 + 90 * S + 15 * M
    assert checkin_deadline(state, DEFAULTS) == T0 + 90 * M + 15 * M


@pytest.mark.parametrize(
    "state",
    [child(), child(placement=placement()), child(placement=placement(0))],
    ids=["no placement", "no interval", "interval 0"],
)
def test_no_checkin_deadline_when_none_is_expected(state):
    assert checkin_deadline(state, W) is None


@given(
    interval=st.integers(1, 10080),
    since=st.one_of(st.none(), st.timedeltas(-30 * D, 30 * D)),
)
def test_checkin_deadline_runs_from_the_later_of_placement_and_last_checkin(interval, since):
    last = None if since is None else T0 + since
    state = child(placement=placement(interval), last_checkin_at=last)
    start = T0 if last is None else max(T0, last)
    assert checkin_deadline(state, W) == start + interval * S + W.checkin_grace


@pytest.mark.parametrize("interval", [None, 60])
def test_checkin_closes_welfare_concerns(interval):
    seen = T0 + 2 * H
    state = child(placement=placement(interval), last_checkin_at=seen)
    actions = on_event("checkin.recorded", checked_in(seen), seen, state, W, LONDON)
    assert resolved(actions) == set(CONCERNS) == {"missed_checkin", "curfew"}
    assert raised_kinds(actions) == []


def test_checkin_restarts_the_clock_from_the_checkin():
    seen = T0 + 2 * H
    state = child(placement=placement(60), last_checkin_at=seen)
    actions = on_event("checkin.recorded", checked_in(seen), seen + M, state, W, LONDON)
    assert armed(actions, "checkin") == [Arm("checkin", seen + 60 * S + W.checkin_grace)]


def test_checkin_without_interval_starts_no_clock():
    state = child(placement=placement(), last_checkin_at=T0 + H)
    actions = on_event("checkin.recorded", checked_in(), T0 + H, state, W, LONDON)
    assert armed(actions, "checkin") == []


@pytest.mark.parametrize("late", [0 * S, 1 * S, 5 * M, 3 * H])
def test_missed_checkin_raises_a_welfare_concern_at_the_deadline(late):
    last = T0 + H
    state = child(placement=placement(60), last_checkin_at=last)
    deadline = last + 60 * S + W.checkin_grace
    actions = on_timer("checkin", deadline, {}, state, W, LONDON, deadline + late)
    assert actions == [Raise("missed_checkin", deadline, {"last_checkin_at": last.isoformat()})]


def test_missed_checkin_with_no_checkin_since_placement_names_the_placement_start():
    state = child(placement=placement(60))
    deadline = T0 + 60 * S + W.checkin_grace
    actions = on_timer("checkin", deadline, {}, state, W, LONDON, deadline)
    assert actions == [Raise("missed_checkin", deadline, {"last_checkin_at": T0.isoformat()})]


@pytest.mark.parametrize("after", [1 * S, 30 * S, 10 * M])
def test_checkin_after_the_clock_was_set_rearms_without_concern(after):
    due = T0 + 60 * S + W.checkin_grace  # the clock set at placement
    seen = due - W.checkin_grace - 60 * S + after  # a check-in came since
    state = child(placement=placement(60), last_checkin_at=seen)
    actions = on_timer("checkin", due, {}, state, W, LONDON, due)
    assert actions == [Arm("checkin", seen + 60 * S + W.checkin_grace)]


@given(
    interval=st.integers(1, 600),
    since_checkin=st.one_of(st.none(), st.timedeltas(0 * S, 2 * H)),
    now_after=st.timedeltas(0 * S, 3 * H),
)
def test_checkin_clock_raises_exactly_when_the_deadline_has_passed(
    interval, since_checkin, now_after
):
    last = None if since_checkin is None else T0 + since_checkin
    state = child(placement=placement(interval), last_checkin_at=last)
    now = T0 + now_after
    deadline = checkin_deadline(state, W)
    actions = on_timer("checkin", now, {}, state, W, LONDON, now)
    if deadline <= now:
        assert raised_kinds(actions) == ["missed_checkin"] and armed(actions, "checkin") == []
    else:
        assert actions == [Arm("checkin", deadline)]


@pytest.mark.parametrize("late", [0 * S, H])
def test_no_welfare_concern_while_missing(late):
    state = child(placement=placement(60), missing=True)
    due = T0 + 60 * S + W.checkin_grace
    assert on_timer("checkin", due, {}, state, W, LONDON, due + late) == []


@pytest.mark.parametrize(
    "state",
    [child(), child(placement=placement())],
    ids=["placement ended", "interval dropped"],
)
def test_checkin_clock_is_silent_when_no_checkin_is_expected(state):
    assert on_timer("checkin", T0 + D, {}, state, W, LONDON, T0 + D) == []


@pytest.mark.parametrize("interval", [None, 60])
def test_absence_stops_the_checkin_clock_and_closes_concerns(interval):
    state = child(placement=placement(interval, "22:00"), missing=True)
    report = absent(T0 - 40 * M)
    actions = on_event("absence.reported", report, T0, state, W, LONDON)
    assert cancelled(actions) == {"checkin"}
    assert resolved(actions) == set(CONCERNS)
    assert of(actions, Arm) == [] and of(actions, Raise) == []


def test_placement_ended_stops_both_clocks_and_closes_concerns():
    data = PlacementEnded.model_validate({"placement_id": "P-1"})
    actions = on_event("placement.ended", data, T0, child(), W, LONDON)
    assert cancelled(actions) == {"checkin", "curfew"}
    assert resolved(actions) == set(CONCERNS)
    assert of(actions, Arm) == []


# --- 3. curfew: local wall time across the 2026 clock changes ----------------------------


@pytest.mark.parametrize(
    ("day", "hhmm", "utc"),
    [
        # a 22:00 curfew is 21:00 UTC in summer, 22:00 UTC in winter
        (date(2026, 1, 15), "22:00", datetime(2026, 1, 15, 22, 0)),
        (date(2026, 7, 15), "22:00", datetime(2026, 7, 15, 21, 0)),
        (date(2026, 12, 31), "22:00", datetime(2026, 12, 31, 22, 0)),
        # the evenings either side of the spring change (Sunday 29 March)
        (date(2026, 3, 28), "22:00", datetime(2026, 3, 28, 22, 0)),
        (date(2026, 3, 29), "22:00", datetime(2026, 3, 29, 21, 0)),
        # the evenings either side of the autumn change (Sunday 25 October)
        (date(2026, 10, 24), "22:00", datetime(2026, 10, 24, 21, 0)),
        (date(2026, 10, 25), "22:00", datetime(2026, 10, 25, 22, 0)),
        # spring night: 00:59 GMT exists, 01:00-01:59 do not, 02:00 is BST
        (date(2026, 3, 29), "00:00", datetime(2026, 3, 29, 0, 0)),
        (date(2026, 3, 29), "00:59", datetime(2026, 3, 29, 0, 59)),
        (date(2026, 3, 29), "01:00", datetime(2026, 3, 29, 1, 0)),  # = 02:00 BST
        (date(2026, 3, 29), "01:30", datetime(2026, 3, 29, 1, 30)),  # = 02:30 BST
        (date(2026, 3, 29), "01:59", datetime(2026, 3, 29, 1, 59)),  # = 02:59 BST
        (date(2026, 3, 29), "02:00", datetime(2026, 3, 29, 1, 0)),
        (date(2026, 3, 29), "02:30", datetime(2026, 3, 29, 1, 30)),
        # autumn night: 01:00-01:59 happen twice; the first (BST) is taken
        (date(2026, 10, 25), "00:00", datetime(2026, 10, 24, 23, 0)),
        (date(2026, 10, 25), "00:59", datetime(2026, 10, 24, 23, 59)),
        (date(2026, 10, 25), "01:00", datetime(2026, 10, 25, 0, 0)),
        (date(2026, 10, 25), "01:30", datetime(2026, 10, 25, 0, 30)),
        (date(2026, 10, 25), "01:59", datetime(2026, 10, 25, 0, 59)),
        (date(2026, 10, 25), "02:00", datetime(2026, 10, 25, 2, 0)),
    ],
)
def test_local_instant_in_london(day, hhmm, utc):
    assert local_instant(day, hhmm, LONDON) == utc.replace(tzinfo=UTC)


def test_curfew_in_the_spring_gap_lands_after_the_gap():
    at = local_instant(date(2026, 3, 29), "01:30", LONDON)
    assert at >= SPRING  # never before the clocks went forward, never an hour early
    assert at.astimezone(LONDON).strftime("%H:%M %Z") == "02:30 BST"


def test_curfew_in_the_autumn_repeat_lands_at_its_first_occurrence():
    at = local_instant(date(2026, 10, 25), "01:30", LONDON)
    local = at.astimezone(LONDON)
    assert local.strftime("%H:%M %Z") == "01:30 BST" and local.fold == 0
    assert (at + H).astimezone(LONDON).strftime("%H:%M %Z") == "01:30 GMT"  # the second one
    assert at < AUTUMN


@given(day=st.dates(date(2026, 1, 1), date(2026, 12, 31)), hh=st.integers(0, 23))
def test_local_instant_shows_the_wall_time_except_in_the_spring_gap(day, hh):
    hhmm = f"{hh:02d}:17"
    local = local_instant(day, hhmm, LONDON).astimezone(LONDON)
    if day == date(2026, 3, 29) and hh == 1:
        assert (local.hour, local.minute) == (2, 17)
    else:
        assert (local.hour, local.minute) == (hh, 17) and local.date() == day
        assert local.fold == 0


@pytest.mark.parametrize(
    ("after", "hhmm", "expected"),
    [
        # a 22:00 curfew across the spring change
        (datetime(2026, 3, 28, 12, 0), "22:00", datetime(2026, 3, 28, 22, 0)),
        (datetime(2026, 3, 28, 22, 0), "22:00", datetime(2026, 3, 29, 21, 0)),  # 23 h later
        (datetime(2026, 3, 29, 12, 0), "22:00", datetime(2026, 3, 29, 21, 0)),
        # a 22:00 curfew across the autumn change
        (datetime(2026, 10, 24, 12, 0), "22:00", datetime(2026, 10, 24, 21, 0)),
        (datetime(2026, 10, 24, 21, 0), "22:00", datetime(2026, 10, 25, 22, 0)),  # 25 h later
        (datetime(2026, 10, 25, 12, 0), "22:00", datetime(2026, 10, 25, 22, 0)),
        # 01:30 on the spring night: after the gap
        (datetime(2026, 3, 28, 22, 0), "01:30", datetime(2026, 3, 29, 1, 30)),
        (datetime(2026, 3, 29, 0, 45), "01:30", datetime(2026, 3, 29, 1, 30)),
        (datetime(2026, 3, 29, 1, 30), "01:30", datetime(2026, 3, 30, 0, 30)),
        # 01:30 on the autumn night: the first 01:30, and only that one
        (datetime(2026, 10, 24, 22, 0), "01:30", datetime(2026, 10, 25, 0, 30)),
        (datetime(2026, 10, 25, 0, 30), "01:30", datetime(2026, 10, 26, 1, 30)),  # 25 h later
        (datetime(2026, 10, 25, 0, 45), "01:30", datetime(2026, 10, 26, 1, 30)),
        # strictly after: a curfew at `after` is the next night's
        (datetime(2026, 11, 22, 22, 0), "22:00", datetime(2026, 11, 23, 22, 0)),
        (datetime(2026, 11, 22, 21, 59, 59), "22:00", datetime(2026, 11, 22, 22, 0)),
        # local midnight is past UTC midnight in summer
        (datetime(2026, 7, 1, 22, 30), "00:00", datetime(2026, 7, 1, 23, 0)),
        (datetime(2026, 7, 1, 23, 30), "00:00", datetime(2026, 7, 2, 23, 0)),
    ],
)
def test_next_curfew_in_london(after, hhmm, expected):
    assert next_curfew(after.replace(tzinfo=UTC), hhmm, LONDON) == expected.replace(tzinfo=UTC)


def _brute_next_curfew(after: datetime, hour: int, minute: int) -> datetime:
    """Walk minute by minute: the first instant after `after` whose first-occurrence London
    wall time is HH:MM; on the spring night a gap time counts as the same time after the gap."""
    m = after.replace(second=0, microsecond=0)
    for _ in range(27 * 60):
        if m > after:
            local = m.astimezone(LONDON)
            if (local.hour, local.minute, local.fold) == (hour, minute, 0):
                return m
            if hour == 1 and m == SPRING + minute * M:
                return m
        m += M
    raise AssertionError("no curfew within 27 hours")


instants_2026 = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 30)).map(
    lambda d: d.replace(tzinfo=UTC)
)
curfews = st.tuples(st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=300)
@given(after=instants_2026, hm=curfews)
@example(after=datetime(2026, 3, 28, 23, 0, tzinfo=UTC), hm=(1, 30))
@example(after=datetime(2026, 3, 29, 0, 59, tzinfo=UTC), hm=(1, 0))
@example(after=datetime(2026, 10, 24, 23, 0, tzinfo=UTC), hm=(1, 30))
@example(after=datetime(2026, 10, 25, 0, 30, tzinfo=UTC), hm=(1, 30))
def test_next_curfew_is_the_first_curfew_strictly_after(after, hm):
    hhmm = f"{hm[0]:02d}:{hm[1]:02d}"
    at = next_curfew(after, hhmm, LONDON)
    assert after < at <= after + 25 * H
    assert at == _brute_next_curfew(after, *hm)


@given(after=instants_2026, hm=curfews)
def test_curfews_come_one_a_night(after, hm):
    hhmm = f"{hm[0]:02d}:{hm[1]:02d}"
    tonight = next_curfew(after, hhmm, LONDON)
    tomorrow = next_curfew(tonight, hhmm, LONDON)
    assert tomorrow - tonight in (23 * H, 24 * H, 25 * H)
    assert next_curfew(tonight - S, hhmm, LONDON) == tonight


@pytest.mark.parametrize(
    ("occurred", "expected_curfew"),
    [
        (datetime(2026, 7, 1, 12, 0), datetime(2026, 7, 1, 21, 0)),
        (datetime(2026, 7, 1, 21, 30), datetime(2026, 7, 2, 21, 0)),
        (datetime(2026, 12, 1, 12, 0), datetime(2026, 12, 1, 22, 0)),
    ],
)
def test_placement_with_curfew_starts_the_curfew_clock(occurred, expected_curfew):
    occurred, expected_curfew = occurred.replace(tzinfo=UTC), expected_curfew.replace(tzinfo=UTC)
    state = child(placement=placement(None, "22:00", started_at=occurred))
    actions = on_event("placement.started", placed(None, "22:00"), occurred, state, W, LONDON)
    assert armed(actions, "curfew") == [
        Arm("curfew", expected_curfew + W.checkin_grace, {"curfew_at": expected_curfew.isoformat()})
    ]


def _curfew_timer(
    curfew_at: datetime, state: ChildState, late: timedelta = 0 * S, w: Watchers = W
) -> list[Action]:
    """The curfew clock set for `curfew_at` runs out (`late` after its due time)."""
    due = curfew_at + w.checkin_grace
    data = {"curfew_at": curfew_at.isoformat()}
    return on_timer("curfew", due, data, state, w, LONDON, due + late)


NIGHTS = [
    # (tonight's curfew, tomorrow night's) for a 22:00 curfew
    (datetime(2026, 11, 22, 22, 0), datetime(2026, 11, 23, 22, 0)),
    (datetime(2026, 7, 1, 21, 0), datetime(2026, 7, 2, 21, 0)),
    (datetime(2026, 3, 28, 22, 0), datetime(2026, 3, 29, 21, 0)),  # spring: 23 h
    (datetime(2026, 10, 24, 21, 0), datetime(2026, 10, 25, 22, 0)),  # autumn: 25 h
]


def _next_night(tomorrow: datetime) -> Arm:
    return Arm("curfew", tomorrow + W.checkin_grace, {"curfew_at": tomorrow.isoformat()})


@pytest.mark.parametrize(("tonight", "tomorrow"), NIGHTS)
@pytest.mark.parametrize(
    "last_checkin", [None, -3 * H, -1 * S], ids=["never", "this afternoon", "just before"]
)
def test_no_checkin_since_curfew_raises_a_curfew_concern(tonight, tomorrow, last_checkin):
    tonight, tomorrow = tonight.replace(tzinfo=UTC), tomorrow.replace(tzinfo=UTC)
    last = None if last_checkin is None else tonight + last_checkin
    state = child(placement=placement(None, "22:00"), last_checkin_at=last)
    actions = _curfew_timer(tonight, state)
    assert actions == [
        _next_night(tomorrow),
        Raise(
            "curfew",
            tonight + W.checkin_grace,
            {"curfew": "22:00", "curfew_at": tonight.isoformat()},
        ),
    ]


@pytest.mark.parametrize(("tonight", "tomorrow"), NIGHTS)
@pytest.mark.parametrize("after", [0 * S, 1 * S, 10 * M, 15 * M], ids=str)
def test_checkin_at_or_after_curfew_keeps_quiet_and_rearms(tonight, tomorrow, after):
    tonight, tomorrow = tonight.replace(tzinfo=UTC), tomorrow.replace(tzinfo=UTC)
    state = child(placement=placement(None, "22:00"), last_checkin_at=tonight + after)
    assert _curfew_timer(tonight, state) == [_next_night(tomorrow)]


@pytest.mark.parametrize(("tonight", "tomorrow"), NIGHTS)
def test_no_curfew_concern_while_missing_but_the_clock_keeps_running(tonight, tomorrow):
    tonight, tomorrow = tonight.replace(tzinfo=UTC), tomorrow.replace(tzinfo=UTC)
    state = child(placement=placement(None, "22:00"), missing=True)
    assert _curfew_timer(tonight, state) == [_next_night(tomorrow)]


def test_curfew_clock_after_a_late_restart_still_arms_the_following_night():
    tonight = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    state = child(placement=placement(None, "22:00"))
    actions = _curfew_timer(tonight, state, late=3 * H)
    assert armed(actions, "curfew") == [_next_night(tonight + D)]
    assert raised_kinds(actions) == ["curfew"]


@pytest.mark.parametrize(
    "state",
    [child(), child(placement=placement(60))],
    ids=["placement ended", "curfew lifted"],
)
def test_curfew_clock_is_silent_without_a_curfew(state):
    assert _curfew_timer(datetime(2026, 11, 22, 22, 0, tzinfo=UTC), state) == []


@settings(max_examples=200)
@given(
    day=st.dates(date(2026, 1, 1), date(2026, 12, 30)),
    hm=curfews,
    checkin=st.one_of(st.none(), st.timedeltas(-2 * H, 2 * H)),
    missing=st.booleans(),
)
def test_curfew_clock_always_rearms_and_raises_only_without_a_later_checkin(
    day, hm, checkin, missing
):
    hhmm = f"{hm[0]:02d}:{hm[1]:02d}"
    tonight = local_instant(day, hhmm, LONDON)
    last = None if checkin is None else tonight + checkin
    state = child(placement=placement(None, hhmm), last_checkin_at=last, missing=missing)
    actions = _curfew_timer(tonight, state)
    tomorrow = next_curfew(tonight, hhmm, LONDON)
    assert armed(actions, "curfew") == [_next_night(tomorrow)]
    should_raise = not missing and (last is None or last < tonight)
    assert raised_kinds(actions) == (["curfew"] if should_raise else [])


# --- 4. risk signals --------------------------------------------------------------------


@pytest.mark.parametrize(("level", "up"), [("low", "medium"), ("medium", "high"), ("high", "high")])
def test_raised_goes_one_level_up_and_stops_at_high(level, up):
    assert raised(level) == up
    assert raised(level, 5) == "high"
    assert raised(level, 0) == level


@pytest.mark.parametrize("kind", ORDINARY_SIGNALS)
@pytest.mark.parametrize(("level", "up"), [("low", "medium"), ("medium", "high")])
def test_a_risk_signal_raises_the_risk_one_level(kind, level, up):
    actions = on_event("risk.signal", signal(kind), T0, child(level), W, LONDON)
    assert new_risk(actions) == [up] and len(actions) == 1


@pytest.mark.parametrize("kind", ORDINARY_SIGNALS)
def test_a_risk_signal_at_high_changes_nothing(kind):
    assert on_event("risk.signal", signal(kind), T0, child("high"), W, LONDON) == []


@pytest.mark.parametrize("level", RISK_ORDER)
@pytest.mark.parametrize("detail", [None, "man in a silver car asked for her by name"])
def test_trafficker_contact_makes_the_child_high_risk_and_alerts_at_once(level, detail):
    actions = on_event(
        "risk.signal", signal("trafficker_contact", detail), T0, child(level), W, LONDON
    )
    assert new_risk(actions) == ([] if level == "high" else ["high"])
    assert of(actions, Raise) == [
        Raise("risk_signal", T0, {"signal": "trafficker_contact", "detail": detail or ""})
    ]


@given(kinds=st.lists(st.sampled_from(SIGNALS), max_size=8), start=st.sampled_from(RISK_ORDER))
def test_risk_only_ever_goes_up(kinds, start):
    level = start
    for kind in kinds:
        actions = on_risk_signal(signal(kind), T0, child(level))
        changes = new_risk(actions)
        assert len(changes) <= 1
        new = changes[0] if changes else level
        assert RISK_ORDER.index(new) >= RISK_ORDER.index(level)
        assert changes != [level]  # no SetRisk to the same level
        if kind == "trafficker_contact":
            assert new == "high" and raised_kinds(actions) == ["risk_signal"]
        else:
            assert new == raised(level) and raised_kinds(actions) == []
        level = new
    ordinary = sum(k != "trafficker_contact" for k in kinds)
    if "trafficker_contact" in kinds or RISK_ORDER.index(start) + ordinary >= 2:
        assert level == "high"
    else:
        assert level == RISK_ORDER[RISK_ORDER.index(start) + ordinary]


# --- 5. repeat missing episodes ----------------------------------------------------------

offsets = st.timedeltas(-400 * D, 10 * D)
windows = st.timedeltas(0 * S, 200 * D)


def _brute_count(starts: list[datetime], now: datetime, window: timedelta) -> int:
    return sum(1 for s in starts if now - window <= s <= now)


@given(starts=st.lists(offsets, max_size=30), window=windows)
def test_episodes_in_window_counts_starts_within_the_window(starts, window):
    instants = [T0 + s for s in starts]
    assert episodes_in_window(instants, T0, window) == _brute_count(instants, T0, window)
    assert episodes_in_window(tuple(reversed(instants)), T0, window) == _brute_count(
        instants, T0, window
    )


@given(starts=st.lists(offsets, max_size=30), a=windows, b=windows)
def test_episodes_in_window_grows_with_the_window(starts, a, b):
    instants = [T0 + s for s in starts]
    small, large = sorted((a, b))
    assert episodes_in_window(instants, T0, small) <= episodes_in_window(instants, T0, large)
    assert episodes_in_window(instants, T0, large) <= sum(s <= T0 for s in instants)


def test_episodes_window_ends_are_inclusive_and_the_future_is_ignored():
    window = 90 * D
    starts = [T0 - window, T0 - window - S, T0, T0 + S]
    assert episodes_in_window(starts, T0, window) == 2


@pytest.mark.parametrize("level", RISK_ORDER)
@pytest.mark.parametrize(
    "earlier",
    [(10 * D, 20 * D), (1 * H, 2 * H), (89 * D, 90 * D), (1 * D, 89 * D)],
    ids=["weeks", "hours", "at the window's edge", "spread"],
)
def test_third_episode_in_90_days_makes_high_risk_and_prompts_a_strategy_meeting(level, earlier):
    state = child(level, episodes=tuple(T0 - e for e in earlier))
    actions = on_new_episode(T0, state, DEFAULTS)
    assert new_risk(actions) == ([] if level == "high" else ["high"])
    assert of(actions, Raise) == [
        Raise("strategy_meeting", T0, {"episodes": 3, "window": "90 days"})
    ]


@pytest.mark.parametrize(
    "earlier",
    [(), (10 * D,), (91 * D, 10 * D), (200 * D, 91 * D), (90 * D + S, 45 * D)],
    ids=["first", "second", "one too old", "both too old", "a second too old"],
)
def test_episodes_spread_over_more_than_90_days_change_nothing(earlier):
    state = child("low", episodes=tuple(T0 - e for e in earlier))
    assert on_new_episode(T0, state, DEFAULTS) == []


@pytest.mark.parametrize("level", RISK_ORDER)
@pytest.mark.parametrize("prompted_ago", [1 * D, 30 * D, 90 * D])
def test_fourth_episode_after_a_prompt_in_the_window_prompts_no_second_meeting(level, prompted_ago):
    state = child(
        level,
        episodes=(T0 - 60 * D, T0 - 40 * D, T0 - 30 * D),
        strategy_prompted_at=T0 - prompted_ago,
    )
    actions = on_new_episode(T0, state, DEFAULTS)
    assert raised_kinds(actions) == []
    assert new_risk(actions) == ([] if level == "high" else ["high"])
    assert len(actions) == len(new_risk(actions))


def test_a_prompt_older_than_the_window_is_given_again():
    state = child(
        "high",
        episodes=(T0 - 60 * D, T0 - 40 * D),
        strategy_prompted_at=T0 - 90 * D - S,
    )
    actions = on_new_episode(T0, state, DEFAULTS)
    assert raised_kinds(actions) == ["strategy_meeting"]


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_the_threshold_is_configurable(threshold):
    w = Watchers(episodes_threshold=threshold)
    episodes = tuple(T0 - n * D for n in range(1, threshold))  # threshold - 1 earlier
    assert raised_kinds(on_new_episode(T0, child("low", episodes=episodes), w)) == [
        "strategy_meeting"
    ]
    if threshold > 1:  # one fewer changes nothing
        assert on_new_episode(T0, child("low", episodes=episodes[1:]), w) == []


@given(
    earlier=st.lists(st.timedeltas(0 * S, 200 * D), max_size=6),
    level=st.sampled_from(RISK_ORDER),
    prompted=st.one_of(st.none(), st.timedeltas(0 * S, 200 * D)),
)
def test_on_new_episode_matches_the_rule(earlier, level, prompted):
    state = child(
        level,
        episodes=tuple(T0 - e for e in earlier),
        strategy_prompted_at=None if prompted is None else T0 - prompted,
    )
    actions = on_new_episode(T0, state, DEFAULTS)
    count = 1 + sum(e <= 90 * D for e in earlier)
    at_threshold = count >= 3
    assert new_risk(actions) == (["high"] if at_threshold and level != "high" else [])
    fresh_prompt = prompted is None or prompted > 90 * D
    assert raised_kinds(actions) == (["strategy_meeting"] if at_threshold and fresh_prompt else [])


# --- 6. return home interview -----------------------------------------------------------


@pytest.mark.parametrize("status", ["returned", "found_safe"])
@pytest.mark.parametrize("reported_late", [0 * S, 2 * H])
def test_located_safe_is_due_a_return_interview(status, reported_late):
    found = T0 + 3 * H
    state = child(placement=placement())
    actions = on_event(
        "child.located", located(found, status), found + reported_late, state, DEFAULTS, LONDON
    )
    assert armed(actions, "return_interview") == [
        Arm(
            "return_interview",
            found + 48 * H,
            {"located_at": found.isoformat(), "due_at": (found + 72 * H).isoformat()},
        )
    ]


@pytest.mark.parametrize("status", ["found_harmed", "in_custody"])
def test_located_harmed_or_in_custody_starts_no_interview_clock(status):
    found = T0 + 3 * H
    actions = on_event("child.located", located(found, status), found, child(), DEFAULTS, LONDON)
    assert armed(actions, "return_interview") == []


@pytest.mark.parametrize("status", ["returned", "found_safe"])
@pytest.mark.parametrize("interval", [30, 240])
def test_located_restarts_the_checkin_clock_from_when_the_child_was_found(status, interval):
    found = T0 + 3 * H
    state = child(
        placement=placement(interval), last_checkin_at=T0 - 5 * H, missing=True
    )  # last seen long before the absence
    actions = on_event("child.located", located(found, status), found + M, state, W, LONDON)
    assert armed(actions, "checkin") == [
        Arm("checkin", found + interval * W.checkin_interval_unit + W.checkin_grace)
    ]


def test_located_without_an_interval_starts_no_checkin_clock():
    found = T0 + 3 * H
    actions = on_event(
        "child.located", located(found, "returned"), found, child(placement=placement()), W, LONDON
    )
    assert armed(actions, "checkin") == []


def test_return_interview_clock_raises_the_reminder_with_its_due_time():
    found = T0
    data = {"located_at": found.isoformat(), "due_at": (found + 72 * H).isoformat()}
    due = found + 48 * H
    actions = on_timer("return_interview", due, data, child(), DEFAULTS, LONDON, due)
    # An interview still owed for an earlier return is closed first, so this one is raised.
    assert actions == [
        Resolve(("return_interview",), "a newer return is due its interview"),
        Raise("return_interview", due, data),
    ]


def test_return_interview_completed_stops_the_clock_and_closes_the_alert():
    done = ReturnInterviewCompleted.model_validate({"completed_at": T0, "by": "lbh-sw1"})
    actions = on_event("return_interview.completed", done, T0, child(), DEFAULTS, LONDON)
    assert cancelled(actions) == {"return_interview"}
    assert resolved(actions) == {"return_interview"}
    assert of(actions, Arm) == [] and of(actions, Raise) == []


# --- anything else is ignored -----------------------------------------------------------


def test_unknown_event_and_clock_kinds_decide_nothing():
    state = child(placement=placement(60, "22:00"))
    assert on_event("shared_alert.published", None, T0, state, W, LONDON) == []
    assert on_timer("unknown", T0, {}, state, W, LONDON, T0) == []


# --- a night on shift, end to end through the rules --------------------------------------


def test_a_night_with_a_curfew_and_hourly_checkins():
    """Placed at 18:00 with hourly check-ins and a 22:00 curfew (November: GMT)."""
    w = DEFAULTS
    started = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    where = placement(60, "22:00", started_at=started)
    state = child(placement=where)
    actions = on_event("placement.started", placed(60, "22:00"), started, state, w, LONDON)
    curfew_at = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    assert armed(actions, "checkin") == [Arm("checkin", started + 75 * M)]
    assert armed(actions, "curfew") == [
        Arm("curfew", curfew_at + 15 * M, {"curfew_at": curfew_at.isoformat()})
    ]

    # 19:00 check-in: the 19:15 clock moves on to 20:15 without a concern
    state = replace(state, last_checkin_at=started + H)
    assert on_timer("checkin", started + 75 * M, {}, state, w, LONDON, started + 75 * M) == [
        Arm("checkin", started + 2 * H + 15 * M)
    ]
    # nobody checks at 20:00: at 20:15 the care home manager and social worker are told
    due = started + 2 * H + 15 * M
    assert raised_kinds(on_timer("checkin", due, {}, state, w, LONDON, due)) == ["missed_checkin"]
    # 20:20 check-in closes the concern
    seen = started + 2 * H + 20 * M
    state = replace(state, last_checkin_at=seen)
    actions = on_event("checkin.recorded", checked_in(seen), seen, state, w, LONDON)
    assert resolved(actions) == set(CONCERNS)
    # 21:55 check-in, before curfew: at 22:15 a curfew concern all the same
    state = replace(state, last_checkin_at=curfew_at - 5 * M)
    assert raised_kinds(_curfew_timer(curfew_at, state, w=w)) == ["curfew"]
    # 22:05 check-in: no curfew concern
    state = replace(state, last_checkin_at=curfew_at + 5 * M)
    assert raised_kinds(_curfew_timer(curfew_at, state, w=w)) == []
    # 23:10 absence: concerns closed, the check-in clock stops
    report = absent(curfew_at + 70 * M)
    actions = on_event("absence.reported", report, curfew_at + 70 * M, state, w, LONDON)
    assert cancelled(actions) == {"checkin"}


def test_every_trafficker_contact_is_news_even_after_an_acknowledged_one():
    actions = on_event(
        "risk.signal", signal("trafficker_contact", "at the door"), T0, child("high"), W, LONDON
    )
    # The earlier alert is closed so that this one is raised, not swallowed by it.
    assert [a.kinds for a in of(actions, Resolve)] == [("risk_signal",)]
    assert [a.kind for a in of(actions, Raise)] == ["risk_signal"]
    assert actions.index(of(actions, Resolve)[0]) < actions.index(of(actions, Raise)[0])


@pytest.mark.parametrize("status", ["found_harmed", "in_custody", None])
def test_a_child_not_back_at_the_placement_is_not_expected_to_check_in(status):
    state = child(placement=placement(60), last_checkin_at=T0)
    actions = on_event("child.located", located(T0 + H, status), T0 + H, state, W, LONDON)
    assert not [a for a in of(actions, Arm) if a.kind == "checkin"]
