"""The curfew watcher as a pure rule: curfews are local wall times in Europe/London, across the
2026 clock changes; every instant is UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from goldenhour.streams.watchers import (
    Arm,
    Raise,
    local_instant,
    next_curfew,
    on_event,
)
from tests.unit.streams.watcher_events import (
    AUTUMN,
    LONDON,
    SPRING,
    D,
    H,
    M,
    S,
    W,
    armed,
    child,
    curfew_timer,
    placed,
    placement,
    raised_kinds,
)

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
    actions = curfew_timer(tonight, state)
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
    assert curfew_timer(tonight, state) == [_next_night(tomorrow)]


@pytest.mark.parametrize(("tonight", "tomorrow"), NIGHTS)
def test_no_curfew_concern_while_missing_but_the_clock_keeps_running(tonight, tomorrow):
    tonight, tomorrow = tonight.replace(tzinfo=UTC), tomorrow.replace(tzinfo=UTC)
    state = child(placement=placement(None, "22:00"), missing=True)
    assert curfew_timer(tonight, state) == [_next_night(tomorrow)]


def test_curfew_clock_after_a_late_restart_still_arms_the_following_night():
    tonight = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    state = child(placement=placement(None, "22:00"))
    actions = curfew_timer(tonight, state, late=3 * H)
    assert armed(actions, "curfew") == [_next_night(tonight + D)]
    assert raised_kinds(actions) == ["curfew"]


@pytest.mark.parametrize(
    "state",
    [child(), child(placement=placement(60))],
    ids=["placement ended", "curfew lifted"],
)
def test_curfew_clock_is_silent_without_a_curfew(state):
    assert curfew_timer(datetime(2026, 11, 22, 22, 0, tzinfo=UTC), state) == []


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
    actions = curfew_timer(tonight, state)
    tomorrow = next_curfew(tonight, hhmm, LONDON)
    assert armed(actions, "curfew") == [_next_night(tomorrow)]
    should_raise = not missing and (last is None or last < tonight)
    assert raised_kinds(actions) == (["curfew"] if should_raise else [])
