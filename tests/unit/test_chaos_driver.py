"""The workload's seeded plan of each child's story."""

from __future__ import annotations

from goldenhour.chaos.driver import plan_children


def test_plans_are_seeded_and_spread_over_the_window():
    a = plan_children(5, 200, 80)
    assert a == plan_children(5, 200, 80)
    assert a != plan_children(6, 200, 80)
    assert len({p.child_id for p in a}) == 200
    assert all(0 <= p.start_at <= 50 for p in a)
    assert [p.start_at for p in a] == sorted(p.start_at for p in a)


def test_the_mix_has_late_reports_acknowledgements_returns_and_children_still_missing():
    plans = plan_children(5, 400, 300)
    late = sum(p.late for p in plans)
    acked = sum(p.ack_after is not None for p in plans)
    found = sum(p.located_after is not None for p in plans)
    assert 60 < late < 180
    assert 120 < acked < 280
    assert 280 < found < 400
    assert all(1 <= p.checkins <= 3 for p in plans)


def test_child_ids_are_case_references():
    import re

    assert all(re.fullmatch(r"[A-Za-z0-9._-]{3,64}", p.child_id) for p in plan_children(1, 50, 60))
