"""Who of a rota is on call: pure, over fixed datetimes, across clock changes and bank holidays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from goldenhour.contracts.oncall import LONGEST_SHIFT, Changes, Override, on_call, shifts
from goldenhour.contracts.rotas import Advance, Calendar, Rota, parse_clock

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
    return set(on_call(r or rota(), LONDON, at, Changes(tuple(overrides))).members)


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
    gap = on_call(rota(), LONDON, night, Changes((off_sick,)))
    assert (gap.members, gap.fallback) == (frozenset({"lbh-head"}), True)
    # An override outside its range changes nothing; one in office hours covers them.
    assert who(local(2026, 12, 1, 18, 0), overrides=[off_sick]) == {"lbh-dm2"}
    cover = Override(
        local(2026, 12, 1, 9, 0), local(2026, 12, 1, 17, 0), action="add", member="lbh-dm3"
    )
    assert on_call(rota(), LONDON, local(2026, 12, 1, 12, 0), Changes((cover,))).members == {
        "lbh-dm3"
    }
    # Removing someone over office hours too changes nothing there: nobody's turn it is.
    long_off = Override(
        local(2026, 11, 30, 17, 0), local(2026, 12, 1, 17, 0), action="remove", member="lbh-dm1"
    )
    office = on_call(rota(), LONDON, local(2026, 12, 1, 12, 0), Changes((long_off,)))
    assert (office.covered, office.fallback) == (False, False)


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


def test_a_bank_holiday_inside_a_week_long_shift_is_no_turn_however_near_the_start() -> None:
    # Friday to Friday; Good Friday 2027 (26 March) lies inside the shift from the 19th, so the
    # first shift starting after the 25th is the one of the 26th, and the first member's.
    weekly = rota(
        shifts=[{"days": ["fri"], "start": "17:00", "end": "fri 17:00"}],
        starts="2027-03-25T00:00:00Z",
    )
    assert who(local(2027, 3, 26, 12, 0), weekly) == {"lbh-dm3"}  # the shift of the 19th
    assert who(local(2027, 3, 26, 18, 0), weekly) == {"lbh-dm1"}


def test_a_shift_longer_than_a_week_overlaps_the_next() -> None:
    long = rota(
        shifts=[{"days": ["fri"], "start": "09:00", "end": "fri 17:00"}], bank_holidays=None
    )
    assert who(local(2026, 12, 11, 12, 0), long) == {"lbh-dm1", "lbh-dm2"}
    assert who(local(2026, 12, 11, 17, 0), long) == {"lbh-dm2"}


# The counting as it was before it was made arithmetic, window by window from `starts`: slow,
# plainly right, and what the count is held to. One change: a bank holiday window near the
# start of a span is judged against the pattern shifts of the week before too, which it missed.
@cache
def slow_bank_holidays(calendar: Calendar, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv=calendar.subdivision, years=year))


def slow_wall(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def slow_windows_from(day: date, r: Rota, tz: ZoneInfo) -> list[tuple[datetime, datetime, bool]]:
    found: list[tuple[datetime, datetime, bool]] = []
    for rule in r.shifts:
        if not any(d.number == day.weekday() for d in rule.days):
            continue
        _, start = parse_clock(rule.start)
        end_day, end = parse_clock(rule.end)
        if end_day is not None:
            ahead = (end_day.number - day.weekday()) % 7 or 7
        else:
            ahead = 1 if end <= start else 0
        found.append((slow_wall(day, start, tz), slow_wall(day + timedelta(ahead), end, tz), False))
    bank = r.bank_holidays
    if bank is not None and day in slow_bank_holidays(bank.calendar, day.year):
        _, start = parse_clock(bank.start)
        _, end = parse_clock(bank.end)
        ahead = 1 if end <= start else 0
        found.append((slow_wall(day, start, tz), slow_wall(day + timedelta(ahead), end, tz), True))
    return found


def slow_windows(r: Rota, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[tuple]:
    first = start.astimezone(tz).date() - timedelta(days=8)  # was 1: the change
    last = end.astimezone(tz).date() + timedelta(days=1)
    near = [
        w
        for n in range((last - first).days + 8)
        for w in slow_windows_from(first + timedelta(days=n), r, tz)
    ]
    pattern = [(s, e) for s, e, bank in near if not bank]
    for s, e, bank in sorted(near):
        if bank and any(ps < e and s < pe for ps, pe in pattern):
            continue
        if start <= s < end:
            yield s, e, bank


def slow_member(r: Rota, tz: ZoneInfo, start: datetime) -> str:
    n = len(r.members)
    if r.advance == Advance.per_week:
        weeks = (
            start.astimezone(tz).replace(tzinfo=None) - r.starts.astimezone(tz).replace(tzinfo=None)
        ) // timedelta(days=7)
        return r.members[weeks % n]
    if start >= r.starts:
        turns = sum(1 for _ in slow_windows(r, tz, r.starts, start))
    else:
        turns = -sum(1 for _ in slow_windows(r, tz, start, r.starts))
    return r.members[turns % n]


# Few times, so that rules start together and the clocks change in some shifts' first hour.
clocks = st.sampled_from(["00:00", "01:30", "07:00", "09:00", "17:00", "22:00"])
weekdays = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])


@st.composite
def shift_rules(draw: st.DrawFn) -> dict:
    if draw(st.booleans()):
        named = f"{draw(weekdays)} {draw(clocks)}"  # a weekend as one stretch, or a week on
        return {"days": [draw(weekdays)], "start": draw(clocks), "end": named}
    days = draw(st.lists(weekdays, min_size=1, max_size=7, unique=True))
    return {"days": days, "start": draw(clocks), "end": draw(clocks)}  # overnight, or not


@st.composite
def random_rotas(draw: st.DrawFn) -> Rota:
    bank = draw(
        st.none()
        | st.builds(
            lambda calendar, start, end: {"calendar": calendar, "start": start, "end": end},
            st.sampled_from(["england_and_wales", "scotland"]),
            clocks,
            clocks,
        )
    )
    starts = draw(st.datetimes(datetime(2021, 1, 1), datetime(2031, 1, 1), timezones=st.just(UTC)))
    return rota(
        shifts=draw(st.lists(shift_rules(), min_size=1, max_size=3)),
        bank_holidays=bank,
        members=[f"m{k}" for k in range(draw(st.integers(1, 4)))],
        advance=draw(st.sampled_from(["per_shift", "per_shift", "per_week"])),
        starts=starts,
    )


@settings(max_examples=100, deadline=None)
@given(random_rotas(), st.integers(-4 * 365 * 24, 4 * 365 * 24))
def test_the_count_gives_the_member_the_slow_count_gives(r: Rota, hours: int) -> None:
    at = r.starts + timedelta(hours=hours, minutes=17)
    found = shifts(r, LONDON, at, at + timedelta(days=2))
    expected = list(slow_windows(r, LONDON, at - LONGEST_SHIFT, at + timedelta(days=2)))
    assert [(s.start, s.end, s.bank_holiday) for s in found] == [w for w in expected if w[1] > at]
    assert [s.member for s in found] == [slow_member(r, LONDON, s.start) for s in found]


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
