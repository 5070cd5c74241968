"""The risk watchers as pure rules: risk signals, repeat missing episodes and the return home
interview. Every instant is UTC."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.contracts.config import Watchers
from goldenhour.contracts.events import (
    ReturnInterviewCompleted,
)
from goldenhour.streams.watchers import (
    RISK_ORDER,
    Arm,
    Raise,
    Resolve,
    episodes_in_window,
    on_event,
    on_new_episode,
    on_risk_signal,
    on_timer,
    raised,
)
from tests.unit.streams.watcher_events import (
    DEFAULTS,
    LONDON,
    ORDINARY_SIGNALS,
    SIGNALS,
    T0,
    D,
    H,
    M,
    S,
    W,
    armed,
    cancelled,
    child,
    located,
    new_risk,
    of,
    placement,
    raised_kinds,
    resolved,
    signal,
)

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
