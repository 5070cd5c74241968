"""Who of a rota is on call: pure, over fixed datetimes, across clock changes and bank holidays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from goldenhour.contracts.rotas import Rota
from goldenhour.streams.oncall import Override, on_call, shifts

LONDON = ZoneInfo("Europe/London")
# An emergency duty team: weekday nights, the weekend as one stretch, bank holidays' days.
EDT = {
    "id": "lbh-edt",
    "role": "duty_manager",
    "shifts": [
        {"days": ["mon", "tue", "wed", "thu"], "start": "17:00", "end": "09:00"},
        {"days": ["fri"], "start": "17:00", "end": "mon 09:00"},
    ],
    "bank_holidays": {"calendar": "england_and_wales"},
    "members": ["lbh-dm1", "lbh-dm2", "lbh-dm3"],
    "starts": "2026-11-30T17:00:00Z",  # a Monday evening, GMT
    "fallback": "lbh-head",
}


def rota(**changes) -> Rota:
    return Rota.model_validate({**EDT, **changes})


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def who(at: datetime, r: Rota | None = None, overrides=()) -> set[str]:
    return set(on_call(r or rota(), LONDON, at, overrides).members)


def test_the_members_take_the_nights_and_the_weekend_in_turn() -> None:
    assert who(local(2026, 11, 30, 20, 0)) == {"lbh-dm1"}
    assert who(local(2026, 12, 1, 3, 0)) == {"lbh-dm1"}  # the same night, past midnight
    assert who(local(2026, 12, 1, 18, 0)) == {"lbh-dm2"}
    assert who(local(2026, 12, 2, 18, 0)) == {"lbh-dm3"}
    assert who(local(2026, 12, 3, 18, 0)) == {"lbh-dm1"}
    weekend = {"lbh-dm2"}  # Friday 17:00 to Monday 09:00, one shift
    assert who(local(2026, 12, 4, 17, 0)) == who(local(2026, 12, 6, 14, 0)) == weekend
    assert who(local(2026, 12, 7, 8, 59)) == weekend
    assert who(local(2026, 12, 7, 17, 0)) == {"lbh-dm3"}


def test_office_hours_are_not_the_rotas() -> None:
    answer = on_call(rota(), LONDON, local(2026, 12, 1, 12, 0))
    assert (answer.covered, answer.members) == (False, frozenset())


def test_a_handover_is_at_the_instant_the_pattern_says() -> None:
    assert who(local(2026, 12, 1, 8, 59)) == {"lbh-dm1"}
    assert who(local(2026, 12, 1, 9, 0)) == set()


def test_the_weekend_of_the_spring_change_is_an_hour_shorter_and_no_handover_moves() -> None:
    [weekend] = [
        s
        for s in shifts(rota(), LONDON, local(2027, 3, 27, 12, 0), local(2027, 3, 27, 13, 0))
        if not s.bank_holiday
    ]
    assert weekend.start == datetime(2027, 3, 26, 17, 0, tzinfo=UTC)  # 17:00 GMT
    assert weekend.end == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)  # 09:00 BST
    assert weekend.end - weekend.start == timedelta(hours=63)


def test_the_weekend_of_the_autumn_change_is_an_hour_longer() -> None:
    [weekend] = shifts(rota(), LONDON, local(2026, 10, 24, 12, 0), local(2026, 10, 24, 13, 0))
    assert weekend.start == datetime(2026, 10, 23, 16, 0, tzinfo=UTC)  # 17:00 BST
    assert weekend.end == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)  # 09:00 GMT
    assert weekend.end - weekend.start == timedelta(hours=65)


def test_a_handover_at_a_time_the_clocks_skip_or_repeat() -> None:
    night = rota(shifts=[{"days": ["sun"], "start": "01:30", "end": "09:00"}], bank_holidays=None)
    [skipped] = shifts(night, LONDON, local(2027, 3, 28, 3, 0), local(2027, 3, 28, 4, 0))
    # 01:30 never shows on the clock that night: read as GMT, it is 02:30 BST.
    assert skipped.start == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    [repeated] = shifts(night, LONDON, local(2026, 10, 25, 3, 0), local(2026, 10, 25, 4, 0))
    assert repeated.start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 01:30, BST


def test_bank_holidays_are_covered_by_day() -> None:
    # Christmas Day 2026 is a Friday: its day, then the weekend; Boxing Day falls in the weekend,
    # and its substitute day, Monday 28 December, is covered too.
    assert who(local(2026, 12, 25, 12, 0)) != set()
    assert who(local(2026, 12, 26, 12, 0)) == who(local(2026, 12, 25, 18, 0))
    assert who(local(2026, 12, 28, 12, 0)) != set()
    assert who(local(2026, 12, 29, 12, 0)) == set()
    # Easter Monday 2027, and not in Scotland, where it is no bank holiday.
    assert who(local(2027, 3, 29, 12, 0)) != set()
    scottish = rota(bank_holidays={"calendar": "scotland"})
    assert who(local(2027, 3, 29, 12, 0), scottish) == set()


def test_a_bank_holiday_day_is_a_shift_of_its_own_in_the_turn() -> None:
    around = shifts(rota(), LONDON, local(2026, 12, 24, 18, 0), local(2026, 12, 25, 18, 0))
    assert [s.bank_holiday for s in around] == [False, True, False]
    members = rota().members
    turns = [members.index(s.member) for s in around]
    assert turns == [(turns[0] + k) % 3 for k in range(3)]


def test_overrides_add_remove_and_replace_in_order() -> None:
    night = local(2026, 11, 30, 20, 0)
    span = {"start": local(2026, 11, 30, 17, 0), "end": local(2026, 12, 1, 9, 0)}
    swap = Override(**span, action="replace", member="lbh-dm1", by="lbh-dm3")
    assert who(night, overrides=[swap]) == {"lbh-dm3"}
    add = Override(**span, action="add", member="lbh-dm2")
    assert who(night, overrides=[swap, add]) == {"lbh-dm2", "lbh-dm3"}
    off_sick = Override(**span, action="remove", member="lbh-dm1")
    gap = on_call(rota(), LONDON, night, [off_sick])
    assert (gap.members, gap.fallback) == (frozenset({"lbh-head"}), True)
    # An override outside its range changes nothing; one in office hours covers them.
    assert who(local(2026, 12, 1, 18, 0), overrides=[off_sick]) == {"lbh-dm2"}
    cover = Override(
        local(2026, 12, 1, 9, 0), local(2026, 12, 1, 17, 0), action="add", member="lbh-dm3"
    )
    assert on_call(rota(), LONDON, local(2026, 12, 1, 12, 0), [cover]).members == {"lbh-dm3"}


def test_per_week_gives_each_member_a_week() -> None:
    weekly = rota(advance="per_week")
    assert who(local(2026, 11, 30, 20, 0), weekly) == {"lbh-dm1"}
    assert who(local(2026, 12, 4, 20, 0), weekly) == {"lbh-dm1"}
    assert who(local(2026, 12, 7, 20, 0), weekly) == {"lbh-dm2"}
    assert who(local(2026, 12, 14, 20, 0), weekly) == {"lbh-dm3"}


instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(instants)
def test_at_every_instant_at_most_one_member_is_on(at: datetime) -> None:
    answer = on_call(rota(), LONDON, at)
    assert len(answer.members) <= 1
    assert answer.covered == bool(answer.members) and not answer.fallback


@settings(max_examples=50, deadline=None)
@given(instants, st.sampled_from([["mon", "wed"], ["tue"], ["mon", "tue", "wed", "thu", "fri"]]))
def test_a_weekday_only_pattern_gives_every_member_shifts_in_turn(
    at: datetime, days: list[str]
) -> None:
    r = rota(shifts=[{"days": days, "start": "09:00", "end": "17:00"}], bank_holidays=None)
    found = shifts(r, LONDON, at, at + timedelta(days=21))
    turns = [r.members.index(s.member) for s in found]
    assert turns == [(turns[0] + k) % 3 for k in range(len(turns))]
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"members": ["lbh-dm1", "lbh-dm1"]}, "members"),
        ({"starts": "2026-11-30T17:00:00"}, "starts"),
        ({"shifts": [{"days": ["fri", "sat"], "start": "17:00", "end": "mon 09:00"}]}, "shifts"),
        ({"shifts": [{"days": ["mon"], "start": "25:00", "end": "09:00"}]}, "shifts"),
        ({"shifts": [{"days": ["mon"], "start": "tue 17:00", "end": "09:00"}]}, "shifts"),
        ({"shifts": []}, "shifts"),
        ({"bank_holidays": {"calendar": "wales"}}, "bank_holidays"),
    ],
)
def test_a_bad_rota_is_refused_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        rota(**change)
    assert refused.value.errors()[0]["loc"][0] == field
