"""Who of a rota is on call at an instant: pure, over the rota, its time zone and its overrides,
with the instant passed in.

Shifts are wall-clock times in the rota's zone, so the night of a clock change is an hour
shorter or longer and no handover moves. A time the clocks skip (01:30 on the last Sunday of
March in London) is read with the offset before the change, as `zoneinfo` does (02:30 BST); a
time they repeat (01:30 on the last Sunday of October) is its first occurrence. A bank holiday
window that overlaps a pattern shift adds nothing: that shift already covers it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from goldenhour.contracts.rotas import Advance, Calendar, Rota, parse_clock

__all__ = ["OnCall", "Override", "Shift", "on_call", "shifts"]

WEEK = timedelta(days=7)
# How far before an instant a shift covering it can have started (the longest, a weekend).
LONGEST_SHIFT = WEEK


@dataclass(frozen=True)
class Shift:
    """One stretch of cover, in UTC, and the member whose it is by the rotation."""

    start: datetime
    end: datetime
    member: str
    bank_holiday: bool = False


@dataclass(frozen=True)
class Override:
    """A change to who is on over `[start, end)`: `member` added, removed, or replaced by `by`
    (a swap is a replacement over the other's shift)."""

    start: datetime
    end: datetime
    action: Literal["add", "remove", "replace"]
    member: str
    by: str | None = None

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class OnCall:
    """Who is on at an instant: `members`, or the fallback when the rota covers the instant and
    nobody is on; `covered` False when the rota says nothing of it (every contact of the role
    is paged, as without a rota)."""

    members: frozenset[str]
    covered: bool
    fallback: bool = False


def _wall(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


@cache
def _bank_holidays(calendar: Calendar, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv=calendar.subdivision, years=year))


def _windows_from(day: date, rota: Rota, tz: ZoneInfo) -> list[tuple[datetime, datetime, bool]]:
    """The cover that starts on local `day`: (start, end, is a bank holiday window)."""
    found: list[tuple[datetime, datetime, bool]] = []
    for rule in rota.shifts:
        if not any(d.number == day.weekday() for d in rule.days):
            continue
        _, start = parse_clock(rule.start)
        end_day, end = parse_clock(rule.end)
        if end_day is not None:
            ahead = (end_day.number - day.weekday()) % 7 or 7
        else:
            ahead = 1 if end <= start else 0
        found.append((_wall(day, start, tz), _wall(day + timedelta(days=ahead), end, tz), False))
    bank = rota.bank_holidays
    if bank is not None and day in _bank_holidays(bank.calendar, day.year):
        _, start = parse_clock(bank.start)
        _, end = parse_clock(bank.end)
        window = (
            _wall(day, start, tz),
            _wall(day + timedelta(days=1 if end <= start else 0), end, tz),
            True,
        )
        found.append(window)
    return found


def _windows(rota: Rota, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[tuple]:
    """Every window starting in `[start, end)`, in order, bank holiday windows that overlap a
    pattern shift left out."""
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    near = [
        w
        for n in range((last - first).days + 8)
        for w in _windows_from(first + timedelta(days=n), rota, tz)
    ]
    pattern = [(s, e) for s, e, bank in near if not bank]
    for s, e, bank in sorted(near):
        if bank and any(ps < e and s < pe for ps, pe in pattern):
            continue
        if start <= s < end:
            yield s, e, bank


def _member(rota: Rota, tz: ZoneInfo, start: datetime) -> str:
    """The member whose turn the window starting at `start` is."""
    n = len(rota.members)
    if rota.advance == Advance.per_week:
        weeks = (
            start.astimezone(tz).replace(tzinfo=None)
            - rota.starts.astimezone(tz).replace(tzinfo=None)
        ) // WEEK
        return rota.members[weeks % n]
    if start >= rota.starts:
        turns = sum(1 for _ in _windows(rota, tz, rota.starts, start))
    else:
        turns = -sum(1 for _ in _windows(rota, tz, start, rota.starts))
    return rota.members[turns % n]


def shifts(rota: Rota, tz: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """The rota's shifts that overlap `[start, end)`, by the pattern alone."""
    found = []
    for s, e, bank in _windows(rota, tz, start - LONGEST_SHIFT, end):
        if e > start:
            found.append(Shift(s, e, _member(rota, tz, s), bank))
    return found


def on_call(rota: Rota, tz: ZoneInfo, at: datetime, overrides: Sequence[Override] = ()) -> OnCall:
    """Who is on at `at`: the pattern's member, then each override active then, in order."""
    covering = shifts(rota, tz, at, at + timedelta(microseconds=1))
    members = {s.member for s in covering if s.start <= at < s.end}
    covered = bool(members)
    for o in overrides:
        if not o.active(at):
            continue
        covered = True
        if o.action == "add":
            members.add(o.member)
        elif o.action == "remove":
            members.discard(o.member)
        elif o.member in members and o.by is not None:
            members.discard(o.member)
            members.add(o.by)
    if covered and not members:
        return OnCall(frozenset({rota.fallback}), covered=True, fallback=True)
    return OnCall(frozenset(members), covered=covered)
