"""Placement-risk watchers as pure rules: events and clocks in, decisions out. Identification
and missed check-ins here; curfews in test_watchers_curfew.py, risk signals, repeat episodes
and return interviews in test_watchers_risk.py. Every instant is UTC."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.contracts.config import Watchers
from goldenhour.contracts.events import (
    PlacementEnded,
)
from goldenhour.streams.watchers import (
    CONCERNS,
    Arm,
    Raise,
    Resolve,
    SetRisk,
    checkin_deadline,
    on_event,
    on_timer,
)
from tests.unit.streams.watcher_events import (
    DEFAULTS,
    LONDON,
    T0,
    D,
    H,
    M,
    S,
    W,
    absent,
    armed,
    cancelled,
    checked_in,
    child,
    curfew_timer,
    identified,
    located,
    of,
    placed,
    placement,
    raised_kinds,
    resolved,
    signal,
)

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
    assert raised_kinds(curfew_timer(curfew_at, state, w=w)) == ["curfew"]
    # 22:05 check-in: no curfew concern
    state = replace(state, last_checkin_at=curfew_at + 5 * M)
    assert raised_kinds(curfew_timer(curfew_at, state, w=w)) == []
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
