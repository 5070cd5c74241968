"""The seeded fault schedule: reproducible, every kind in a long enough window, no overlap."""

from __future__ import annotations

import pytest

from goldenhour.chaos import faults
from goldenhour.chaos.faults import schedule, settled_at

PARTS = ["api-1", "api-2", "streams-1", "streams-2", "dispatcher-1", "dispatcher-2"]


def test_same_seed_same_schedule_and_another_seed_another():
    assert schedule(7, 300, PARTS) == schedule(7, 300, PARTS)
    assert schedule(7, 300, PARTS) != schedule(8, 300, PARTS)


@pytest.mark.parametrize("seed", range(20))
def test_the_quick_window_holds_every_kind_once_at_least(seed):
    kinds = {f.kind for f in schedule(seed, 115, PARTS, faults.QUICK_KINDS, minute_s=5.0)}
    assert kinds == set(faults.QUICK_KINDS)


@pytest.mark.parametrize("seed", range(20))
def test_faults_never_overlap_and_end_with_their_gap_inside_the_window(seed):
    plan = schedule(seed, 300, PARTS)
    assert plan[0].at >= faults.LEAD_IN_S
    for before, after in zip(plan, plan[1:], strict=False):
        assert after.at >= settled_at(before)
    assert settled_at(plan[-1]) <= 300


def test_pauses_last_as_the_issue_says_and_kills_name_a_part():
    plan = schedule(3, 600, PARTS)
    for f in plan:
        if f.kind == faults.BROKER_PAUSE:
            assert f.duration == 15.0
        elif f.kind == faults.POSTGRES_PAUSE:
            assert f.duration == 8.0
        elif f.kind in faults.STORM_KINDS:
            assert 60.0 <= f.duration <= 180.0
        else:
            assert f.duration == faults.DURATIONS.get(f.kind, 0.0)
        assert (f.target in PARTS) == (f.kind == faults.KILL_PART)
    assert any(f.kind == faults.KILL_PART for f in plan)


def test_a_short_window_holds_what_fits_and_nothing_past_it():
    plan = schedule(1, 20, PARTS)
    assert plan and all(settled_at(f) <= 20 for f in plan)
    assert schedule(1, 3, PARTS) == []


def test_no_parts_is_refused():
    with pytest.raises(ValueError, match="at least one part"):
        schedule(1, 60, [])
