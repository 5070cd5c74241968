"""A rota's cover over a span: the stretches of the same people, the handovers between them and
the gaps the fallback fills, held to on_call at every instant, across clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldenhour.contracts.oncall import (
    Changes,
    Handover,
    Override,
    Segment,
    Shift,
    Temporary,
    gaps,
    handovers,
    on_call,
    shifts,
    timeline,
)
from goldenhour.contracts.rotas import Rota
from tests.unit.contracts.test_oncall import LONDON, local, random_rotas, rota

MICROSECOND = timedelta(microseconds=1)


def names(*members: str) -> frozenset[str]:
    return frozenset(members)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Rota, datetime, datetime, Changes]:
    """A random rota over a few days years from its start, with overrides of its members and of
    a stranger, and perhaps a temporary schedule, starting and ending in and around the span."""
    r = draw(random_rotas())
    start = r.starts + timedelta(minutes=draw(st.integers(-3 * 365 * 1440, 3 * 365 * 1440)))
    end = start + timedelta(minutes=draw(st.integers(1, 6 * 1440)))
    people = st.sampled_from([*r.members, "stranger"])

    def span() -> tuple[datetime, datetime]:
        begins = start + timedelta(minutes=draw(st.integers(-1440, 6 * 1440)))
        return begins, begins + timedelta(minutes=draw(st.integers(1, 3 * 1440)))

    overrides = tuple(
        Override(*span(), draw(st.sampled_from(["add", "remove", "replace"])), draw(people), by)
        for by in draw(st.lists(people | st.none(), max_size=3))
    )
    temporaries = tuple(
        Temporary(*span(), tuple(Shift(*span(), draw(people)) for _ in range(count)))
        for count in draw(st.lists(st.integers(0, 3), max_size=1))
    )
    return r, start, end, Changes(overrides, temporaries)


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.data())
def test_the_timeline_tiles_the_span_and_agrees_with_on_call(scenario, data: st.DataObject) -> None:
    r, start, end, changes = scenario
    segments = timeline(r, LONDON, start, end, changes)
    assert segments[0].start == start and segments[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(segments))
    for s in segments:
        assert s.start < s.end
        inside = s.start + (s.end - s.start - MICROSECOND) * data.draw(st.floats(0, 1))
        for at in {s.start, inside, s.end - MICROSECOND}:
            answer = on_call(r, LONDON, at, changes)
            assert (answer.members, answer.covered, answer.fallback) == (
                s.members,
                s.covered,
                s.fallback,
            )
        pattern = on_call(r, LONDON, s.start)
        if any(t.active(s.start) for t in changes.temporaries):
            assert s.source == "temporary"
        elif on_call(r, LONDON, s.start, changes) != pattern:
            assert s.source == "override"
        else:
            assert s.source == ("pattern" if s.covered else "uncovered")
        covering = [p for p in shifts(r, LONDON, s.start, s.end) if p.start <= s.start]
        assert s.pattern_member == (covering[0].member if covering else None)
        assert s.bank_holiday == any(p.bank_holiday for p in covering)
    # Pieces alike are one segment unless a pattern shift starts or ends between them.
    bounds = {t for s in shifts(r, LONDON, start, end) for t in (s.start, s.end)}
    assert {t for t in bounds if start < t < end} <= {s.start for s in segments}
    for a, b in pairwise(segments):
        assert b.start in bounds or a != Segment(**{**vars(b), "start": a.start, "end": a.end})


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_handovers_are_where_someone_comes_on_and_gaps_where_the_fallback_is(scenario) -> None:
    r, start, end, changes = scenario
    found = handovers(r, LONDON, start, end, changes)
    boundaries = [s.start for s in timeline(r, LONDON, start, end + MICROSECOND, changes)[1:]]
    expected = []
    for at in boundaries:
        now = on_call(r, LONDON, at, changes).members
        before = on_call(r, LONDON, at - MICROSECOND, changes).members
        if now - before:
            expected.append(Handover(at, now - before, before - now))
    assert found == expected
    assert all(start < h.at <= end for h in found)
    paged = gaps(r, LONDON, start, end, changes)
    assert all(a.end < b.start for a, b in pairwise(paged))
    assert sum((g.end - g.start for g in paged), timedelta()) == sum(
        (s.end - s.start for s in timeline(r, LONDON, start, end, changes) if s.fallback),
        timedelta(),
    )
    for g in paged:
        assert g.members == {r.fallback} and g.fallback
        if g.start > start:
            assert not on_call(r, LONDON, g.start - MICROSECOND, changes).fallback
        if g.end < end:
            assert not on_call(r, LONDON, g.end, changes).fallback


def test_the_emergency_duty_teams_handovers_name_who_comes_on_and_goes_off() -> None:
    # An ordinary Tuesday: the night's member goes off at 09:00 to nobody, no handover; the
    # evening's comes on at 17:00 from nobody.
    tuesday = handovers(rota(), LONDON, local(2026, 12, 1, 8, 0), local(2026, 12, 1, 18, 0))
    assert tuesday == [Handover(local(2026, 12, 1, 17, 0), names("lbh-dm2"), names())]
    # Christmas Day, a Friday bank holiday: the night hands to the day at 09:00, the day to the
    # weekend at 17:00.
    christmas = handovers(rota(), LONDON, local(2026, 12, 25, 8, 0), local(2026, 12, 25, 18, 0))
    assert christmas == [
        Handover(local(2026, 12, 25, 9, 0), names("lbh-dm2"), names("lbh-dm1")),
        Handover(local(2026, 12, 25, 17, 0), names("lbh-dm3"), names("lbh-dm2")),
    ]


def test_consecutive_shifts_of_one_member_are_two_segments_and_no_handover() -> None:
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    alone = rota(
        shifts=[
            {"days": weekdays, "start": "09:00", "end": "17:00"},
            {"days": weekdays, "start": "17:00", "end": "09:00"},
        ],
        bank_holidays=None,
        members=["lbh-dm1"],
    )
    span = (local(2026, 12, 1, 8, 0), local(2026, 12, 1, 18, 0))
    day = timeline(alone, LONDON, *span)
    assert [s.start for s in day] == [span[0], local(2026, 12, 1, 9, 0), local(2026, 12, 1, 17, 0)]
    assert {(s.members, s.pattern_member, s.source) for s in day} == {
        (names("lbh-dm1"), "lbh-dm1", "pattern")
    }
    assert handovers(alone, LONDON, *span) == []


def test_removing_the_only_member_is_a_gap_handed_to_the_fallback() -> None:
    off = Override(local(2026, 11, 30, 22, 0), local(2026, 12, 1, 9, 0), "remove", "lbh-dm1")
    changes = Changes((off,))
    span = (local(2026, 11, 30, 12, 0), local(2026, 12, 1, 12, 0))
    gap = Segment(
        local(2026, 11, 30, 22, 0),
        local(2026, 12, 1, 9, 0),
        names("lbh-head"),
        "lbh-dm1",
        "override",
        covered=True,
        fallback=True,
        bank_holiday=False,
    )
    assert timeline(rota(), LONDON, *span, changes) == [
        Segment(
            span[0], local(2026, 11, 30, 17, 0), names(), None, "uncovered", False, False, False
        ),
        Segment(
            local(2026, 11, 30, 17, 0),
            gap.start,
            names("lbh-dm1"),
            "lbh-dm1",
            "pattern",
            True,
            False,
            False,
        ),  # fmt: skip
        gap,
        Segment(gap.end, span[1], names(), None, "uncovered", False, False, False),
    ]
    assert gaps(rota(), LONDON, *span, changes) == [gap]
    # At 09:00 the fallback goes off to nobody: no handover.
    assert handovers(rota(), LONDON, *span, changes) == [
        Handover(local(2026, 11, 30, 17, 0), names("lbh-dm1"), names()),
        Handover(gap.start, names("lbh-head"), names("lbh-dm1")),
    ]


CHRISTMAS = Temporary(
    local(2026, 12, 24, 17, 0),
    local(2026, 12, 29, 9, 0),
    (
        Shift(local(2026, 12, 24, 17, 0), local(2026, 12, 26, 9, 0), "lbh-dm3"),
        # Nobody from Boxing Day morning to the next.
        Shift(local(2026, 12, 27, 9, 0), local(2026, 12, 29, 9, 0), "lbh-dm1"),
    ),
)


def test_a_hole_in_a_temporary_schedule_is_a_gap() -> None:
    span = (local(2026, 12, 24, 0, 0), local(2026, 12, 30, 0, 0))
    hole = Segment(
        local(2026, 12, 26, 9, 0),
        local(2026, 12, 27, 9, 0),
        names("lbh-head"),
        "lbh-dm3",  # the pattern's weekend, which the schedule replaces
        "temporary",
        covered=True,
        fallback=True,
        bank_holiday=False,
    )
    assert gaps(rota(), LONDON, *span, Changes(temporaries=(CHRISTMAS,))) == [hole]
    ats = [h.at for h in handovers(rota(), LONDON, *span, Changes(temporaries=(CHRISTMAS,)))]
    assert local(2026, 12, 25, 9, 0) not in ats  # the pattern's Christmas Day counts for nothing
    assert hole.start in ats and hole.end in ats


def test_gaps_over_a_fortnight_are_each_whole() -> None:
    night = Override(local(2026, 12, 22, 17, 0), local(2026, 12, 23, 9, 0), "remove", "lbh-dm2")
    # New Year's Day's member and the weekend's both away: one gap over two pattern shifts.
    new_year = Override(local(2027, 1, 1, 9, 0), local(2027, 1, 1, 17, 0), "remove", "lbh-dm3")
    weekend = Override(local(2027, 1, 1, 17, 0), local(2027, 1, 4, 9, 0), "remove", "lbh-dm1")
    changes = Changes((night, new_year, weekend), (CHRISTMAS,))
    span = (local(2026, 12, 21, 0, 0), local(2027, 1, 4, 0, 0))
    found = gaps(rota(), LONDON, *span, changes)
    assert [(g.start, g.end, g.source, g.pattern_member) for g in found] == [
        (night.start, night.end, "override", "lbh-dm2"),
        (local(2026, 12, 26, 9, 0), local(2026, 12, 27, 9, 0), "temporary", "lbh-dm3"),
        (new_year.start, span[1], "override", "lbh-dm3"),
    ]
    assert found[-1].bank_holiday  # where it begins
    paged = [s for s in timeline(rota(), LONDON, *span, changes) if s.fallback]
    assert len(paged) == 4  # New Year's Day and the weekend are two shifts


def wall(found: list[Handover]) -> list[str]:
    return [h.at.astimezone(LONDON).strftime("%a %d %H:%M") for h in found]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (  # 29 March 2026: the weekend is an hour shorter
            local(2026, 3, 25, 12, 0),
            ["Wed 25 17:00", "Thu 26 17:00", "Fri 27 17:00", "Mon 30 17:00"],
        ),
        (  # 25 October 2026: an hour longer
            local(2026, 10, 21, 12, 0),
            ["Wed 21 17:00", "Thu 22 17:00", "Fri 23 17:00", "Mon 26 17:00"],
        ),
        (  # 28 March 2027, in the Easter weekend: Good Friday's and Easter Monday's days
            local(2027, 3, 24, 12, 0),
            [
                "Wed 24 17:00",
                "Thu 25 17:00",
                "Fri 26 09:00",
                "Fri 26 17:00",
                "Mon 29 09:00",
                "Mon 29 17:00",
            ],
        ),
        (  # 31 October 2027
            local(2027, 10, 27, 12, 0),
            ["Wed 27 17:00", "Thu 28 17:00", "Fri 29 17:00", "Mon 01 17:00"],
        ),
    ],
)
def test_handovers_stay_at_the_wall_clock_across_a_clock_change(
    start: datetime, expected: list[str]
) -> None:
    found = handovers(rota(), LONDON, start, start + timedelta(days=6))
    assert wall(found) == expected
    offsets = {h.at.astimezone(LONDON).utcoffset() for h in found}
    assert offsets == {timedelta(0), timedelta(hours=1)}
    assert all(len(h.incoming) == 1 for h in found)


@pytest.mark.parametrize(
    ("saturday", "handover"),
    [
        # 01:30 is skipped: read with the offset before the change, GMT, so 02:30 BST.
        (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (datetime(2027, 3, 27, 22, 0, tzinfo=UTC), datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        # 01:30 comes twice: the first, BST.
        (datetime(2026, 10, 24, 21, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2027, 10, 30, 21, 0, tzinfo=UTC), datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
    ],
)
def test_a_handover_at_a_time_the_clocks_skip_or_repeat(
    saturday: datetime, handover: datetime
) -> None:
    nights = rota(
        shifts=[
            {"days": ["sat"], "start": "22:00", "end": "01:30"},
            {"days": ["sun"], "start": "01:30", "end": "09:00"},
        ],
        bank_holidays=None,
        starts=saturday,
    )
    found = handovers(nights, LONDON, saturday - timedelta(hours=1), saturday + timedelta(hours=12))
    assert found == [
        Handover(saturday, names("lbh-dm1"), names()),
        Handover(handover, names("lbh-dm2"), names("lbh-dm1")),
    ]
    assert on_call(nights, LONDON, handover - MICROSECOND).members == {"lbh-dm1"}
