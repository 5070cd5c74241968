"""Who of a rota is on call at an instant: pure, over the rota, its time zone and its overrides,
with the instant passed in.

Shifts are wall-clock times in the rota's zone, so the night of a clock change is an hour
shorter or longer and no handover moves. A time the clocks skip (01:30 on the last Sunday of
March in London) is read with the offset before the change, as `zoneinfo` does (02:30 BST); a
time they repeat (01:30 on the last Sunday of October) is its first occurrence. A bank holiday
window that overlaps a pattern shift adds nothing: that shift already covers it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from goldenhour.contracts.config import Contact, GoldenHourConfig, Organisation
from goldenhour.contracts.rotas import Advance, Calendar, Rota, Weekday, parse_clock

__all__ = [
    "Changes",
    "Handover",
    "OnCall",
    "Override",
    "Segment",
    "Shift",
    "Temporary",
    "gaps",
    "handovers",
    "on_call",
    "on_duty",
    "on_duty_contacts",
    "shifts",
    "timeline",
]

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# How far before an instant a shift covering it can have started: an end named on the start's
# own weekday is a week later, so up to a day more than a week by the clock, and the clocks may
# go back meanwhile.
LONGEST_SHIFT = timedelta(days=9)
MICROSECOND = timedelta(microseconds=1)


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
class Temporary:
    """A schedule that replaces the pattern and every override over `[start, end)` (Christmas):
    its own shifts only, and where none covers an instant inside it, nobody (the fallback)."""

    start: datetime
    end: datetime
    shifts: tuple[Shift, ...]

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Changes:
    """What a rota's managers changed: overrides in the order they were made, and temporary
    schedules (which never overlap one another)."""

    overrides: tuple[Override, ...] = ()
    temporaries: tuple[Temporary, ...] = ()


NO_CHANGES = Changes()


@dataclass(frozen=True)
class OnCall:
    """Who is on at an instant: `members`, or the fallback when the rota covers the instant and
    nobody is on; `covered` False when the rota says nothing of it (every contact of the role
    is paged, as without a rota)."""

    members: frozenset[str]
    covered: bool
    fallback: bool = False


@dataclass(frozen=True)
class Segment:
    """A stretch [start, end) over which the same people are on call."""

    start: datetime
    end: datetime
    # Who is paged then (the fallback alone in a gap).
    members: frozenset[str]
    # The pattern's member then, whatever changed it (the earlier started of overlapping
    # shifts); None where the pattern has no shift.
    pattern_member: str | None
    # What decided `members`: "override" when an override active then changed the pattern's
    # answer (or covered an uncovered time); "uncovered" when nothing covers it (covered False:
    # every contact of the role is paged).
    source: Literal["pattern", "override", "temporary", "uncovered"]
    covered: bool
    # Nobody on: the rota's fallback is paged.
    fallback: bool
    # The pattern shift then is a bank holiday window.
    bank_holiday: bool


@dataclass(frozen=True)
class Handover:
    """An instant someone comes on call, and who goes off then."""

    at: datetime
    # On at `at` and not just before (the fallback included when a gap begins).
    incoming: frozenset[str]
    # On just before and not at `at`.
    outgoing: frozenset[str]


@dataclass(frozen=True)
class _Rule:
    """Cover that starts on some weekdays (Monday 0) at a time, read once from the config."""

    days: frozenset[int]
    start: time
    end: time
    end_day: int | None = None

    def ahead(self, weekday: int) -> int:
        """Days from a start on `weekday` to the end: to the named day (a week on for the start's
        own), else to the next day when the end is at or before the start."""
        if self.end_day is not None:
            return (self.end_day - weekday) % 7 or 7
        return 1 if self.end <= self.start else 0


# Hashed by identity, as _compile makes one of each, and hashing by value on every look-up
# would cost more than the rest of on_call.
@dataclass(frozen=True, eq=False)
class _Pattern:
    """A rota's weekly cover and its bank holidays' window, read once, a key to what is worked
    out from it once (which holidays count)."""

    rules: tuple[_Rule, ...]
    bank: tuple[Calendar, _Rule] | None
    # How many rules start on each weekday: one week's windows, a day at a time.
    per_weekday: tuple[int, ...]


RuleKey = tuple[tuple[Weekday, ...], str, str]


@lru_cache(maxsize=1024)
def _compile(rules: tuple[RuleKey, ...], bank: tuple[Calendar, str, str] | None) -> _Pattern:
    read = []
    for days, start, end in rules:
        end_day, end_at = parse_clock(end)
        numbers = frozenset(d.number for d in days)
        named = None if end_day is None else end_day.number
        read.append(_Rule(numbers, parse_clock(start)[1], end_at, named))
    per_weekday = tuple(sum(w in r.days for r in read) for w in range(7))
    if bank is None:
        return _Pattern(tuple(read), None, per_weekday)
    calendar, start, end = bank
    every = frozenset(range(7))
    return _Pattern(
        tuple(read),
        (calendar, _Rule(every, parse_clock(start)[1], parse_clock(end)[1])),
        per_weekday,
    )


def _pattern(rota: Rota) -> _Pattern:
    bank = rota.bank_holidays
    return _compile(
        tuple((tuple(r.days), r.start, r.end) for r in rota.shifts),
        None if bank is None else (bank.calendar, bank.start, bank.end),
    )


Window = tuple[datetime, datetime, bool]


def _wall(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _window(day: date, rule: _Rule, tz: ZoneInfo) -> tuple[datetime, datetime]:
    ahead = timedelta(days=rule.ahead(day.weekday()))
    return _wall(day, rule.start, tz), _wall(day + ahead, rule.end, tz)


def _pattern_windows(day: date, p: _Pattern, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    return [_window(day, r, tz) for r in p.rules if day.weekday() in r.days]


@cache
def _bank_holidays(calendar: Calendar, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv=calendar.subdivision, years=year))


@lru_cache(maxsize=4096)
def _counted_holidays(p: _Pattern, tz: ZoneInfo, year: int) -> frozenset[date]:
    """The bank holidays of `year` whose window is cover of its own: not overlapping a pattern
    shift, of which those starting from a week before the day (a week and a day long at most) to
    the day after (the window may run past midnight) are the ones that can."""
    if p.bank is None:
        return frozenset()
    calendar, rule = p.bank
    counted = set()
    for day in _bank_holidays(calendar, year):
        start, end = _window(day, rule, tz)
        near = (w for n in range(-7, 2) for w in _pattern_windows(day + n * DAY, p, tz))
        if not any(s < end and start < e for s, e in near):
            counted.add(day)
    return frozenset(counted)


def _windows_from(day: date, p: _Pattern, tz: ZoneInfo) -> list[Window]:
    """The cover that starts on local `day`: (start, end, is a bank holiday window)."""
    found = [(s, e, False) for s, e in _pattern_windows(day, p, tz)]
    if p.bank is not None and day in _counted_holidays(p, tz, day.year):
        found.append((*_window(day, p.bank[1], tz), True))
    return found


def _windows(p: _Pattern, tz: ZoneInfo, start: datetime, end: datetime) -> list[Window]:
    """Every window starting in `[start, end)`, in order."""
    # A window starts on its own local day, give or take one in a zone whose clocks jump a day.
    first = start.astimezone(tz).date() - DAY
    days = (end.astimezone(tz).date() - first).days + 2
    near = (w for n in range(days) for w in _windows_from(first + n * DAY, p, tz))
    return sorted(w for w in near if start <= w[0] < end)


def _by_day(p: _Pattern, tz: ZoneInfo, first: date, last: date) -> int:
    """How many windows start on the local days `[first, last)`, negative for `[last, first)`:
    the pattern by whole weeks and the days left over, the bank holidays by their dates, so the
    cost is the years between, not the days, and an offset changing in between alters nothing."""
    if last < first:
        return -_by_day(p, tz, last, first)
    weeks, rest = divmod((last - first).days, 7)
    pattern = weeks * sum(p.per_weekday)
    pattern += sum(p.per_weekday[(first.weekday() + k) % 7] for k in range(rest))
    years = range(first.year, last.year + 1)
    return pattern + sum(first <= d < last for y in years for d in _counted_holidays(p, tz, y))


def _before(p: _Pattern, tz: ZoneInfo, at: datetime, since: date) -> int:
    """How many windows start before `at`, less those on local days before `since`. Every window
    of a day two or more before `at`'s starts before it and none of a day two or more after
    does, so only the three days around it are looked at window by window."""
    eve = at.astimezone(tz).date() - DAY
    close = sum(s < at for n in range(3) for s, _, _ in _windows_from(eve + n * DAY, p, tz))
    return _by_day(p, tz, since, eve) + close


def _turns(rota: Rota, p: _Pattern, tz: ZoneInfo, starts: list[datetime]) -> list[int]:
    """The turn of each of the consecutive windows starting at `starts`, counted from
    `rota.starts`: the weeks between, or the windows starting between (windows that start
    together share a turn), counted for the first and stepped on for the rest."""
    if rota.advance == Advance.per_week:
        origin = rota.starts.astimezone(tz).replace(tzinfo=None)
        return [(s.astimezone(tz).replace(tzinfo=None) - origin) // WEEK for s in starts]
    if not starts:
        return []
    since = rota.starts.astimezone(tz).date()
    first = _before(p, tz, starts[0], since) - _before(p, tz, rota.starts, since)
    return [first + bisect_left(starts, s) for s in starts]


def shifts(rota: Rota, tz: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """The rota's shifts that overlap `[start, end)`, by the pattern alone."""
    p = _pattern(rota)
    windows = _windows(p, tz, start - LONGEST_SHIFT, end)
    turns = _turns(rota, p, tz, [s for s, _, _ in windows])
    n = len(rota.members)
    return [
        Shift(s, e, rota.members[turn % n], bank)
        for (s, e, bank), turn in zip(windows, turns, strict=True)
        if e > start
    ]


def _resolve(rota: Rota, at: datetime, pattern: Iterable[Shift], changes: Changes) -> OnCall:
    """on_call over the pattern's shifts around `at`, which a caller asking of many instants
    finds once."""
    temporary = next((t for t in changes.temporaries if t.active(at)), None)
    if temporary is not None:
        members = {s.member for s in temporary.shifts if s.start <= at < s.end}
        covered = True
    else:
        members = {s.member for s in pattern if s.start <= at < s.end}
        covered = bool(members)
        for o in changes.overrides:
            if not o.active(at):
                continue
            # Only an addition covers a time the pattern leaves to every contact of the role:
            # removing or replacing someone there changes nobody's turn.
            if o.action == "add":
                covered = True
                members.add(o.member)
            elif o.action == "remove":
                members.discard(o.member)
            elif o.member in members and o.by is not None:
                members.discard(o.member)
                members.add(o.by)
    if covered and not members:
        return OnCall(frozenset({rota.fallback}), covered=True, fallback=True)
    return OnCall(frozenset(members), covered=covered)


def on_call(rota: Rota, tz: ZoneInfo, at: datetime, changes: Changes = NO_CHANGES) -> OnCall:
    """Who is on at `at`: a temporary schedule's member where one is active (nothing else
    counts then), else the pattern's member changed by each override active then, in order."""
    return _resolve(rota, at, shifts(rota, tz, at, at + MICROSECOND), changes)


def _segment(
    rota: Rota, start: datetime, end: datetime, pattern: list[Shift], changes: Changes
) -> Segment:
    """The piece `[start, end)`, over which nothing starts or ends, as on_call sees its start."""
    on = [s for s in pattern if s.start <= start < s.end]
    answer = _resolve(rota, start, on, changes)
    source: Literal["pattern", "override", "temporary", "uncovered"]
    if any(t.active(start) for t in changes.temporaries):
        source = "temporary"
    elif answer != _resolve(rota, start, on, NO_CHANGES):
        source = "override"
    else:
        source = "pattern" if answer.covered else "uncovered"
    return Segment(
        start,
        end,
        answer.members,
        on[0].member if on else None,
        source,
        answer.covered,
        answer.fallback,
        any(s.bank_holiday for s in on),
    )


def _merged(
    segments: Iterable[Segment], joins: Callable[[Segment, Segment], bool]
) -> list[Segment]:
    """`segments` with each that follows on from the one before and `joins` it made one."""
    merged: list[Segment] = []
    for s in segments:
        if merged and merged[-1].end == s.start and joins(merged[-1], s):
            merged[-1] = replace(merged[-1], end=s.end)
        else:
            merged.append(s)
    return merged


def timeline(
    rota: Rota, tz: ZoneInfo, start: datetime, end: datetime, changes: Changes = NO_CHANGES
) -> list[Segment]:
    """`[start, end)` in the stretches over which the same people are on, for a view of the
    rota: cut wherever a pattern shift, override, temporary schedule or temporary shift starts or
    ends, and pieces alike made one again, except across a pattern shift's boundary (two
    consecutive shifts of one person are two shifts)."""
    pattern = shifts(rota, tz, start, end)
    bounds = {t for s in pattern for t in (s.start, s.end)}
    changed: list[Override | Temporary | Shift] = [*changes.overrides, *changes.temporaries]
    changed += [s for t in changes.temporaries for s in t.shifts]
    cuts = bounds | {t for c in changed for t in (c.start, c.end)}
    points = sorted({start, end} | {t for t in cuts if start < t < end}) if start < end else []
    pieces = [_segment(rota, a, b, pattern, changes) for a, b in pairwise(points)]
    return _merged(
        pieces, lambda a, b: b.start not in bounds and replace(a, start=b.start, end=b.end) == b
    )


def handovers(
    rota: Rota, tz: ZoneInfo, start: datetime, end: datetime, changes: Changes = NO_CHANGES
) -> list[Handover]:
    """Every instant in `(start, end]` at which someone comes on call, in order: who comes on
    and who goes off. Going from cover to none is no handover unless someone named comes on."""
    pieces = timeline(rota, tz, start, end + MICROSECOND, changes)
    return [
        Handover(b.start, b.members - a.members, a.members - b.members)
        for a, b in pairwise(pieces)
        if b.members - a.members
    ]


def gaps(
    rota: Rota, tz: ZoneInfo, start: datetime, end: datetime, changes: Changes = NO_CHANGES
) -> list[Segment]:
    """The stretches of `[start, end)` in which the fallback is paged, each whole however its
    pieces differ, with the particulars (source, pattern member) of where it begins."""
    paged = (s for s in timeline(rota, tz, start, end, changes) if s.fallback)
    return _merged(paged, lambda a, b: True)


def on_duty(
    config: GoldenHourConfig,
    org: Organisation,
    role: str,
    now: datetime | None,
    changes: Mapping[str, Changes] | None = None,
) -> set[str] | None:
    """The ids of `org`'s contacts on call for `role` at `now` by its rota and the rota's
    `changes` (by rota id; its fallback when nobody is); None where no rota says (no rota of the
    role, or an instant it does not cover): then every contact of the role is."""
    rota = next((r for r in org.rotas if r.role == role), None)
    if rota is None or now is None:
        return None
    answer = on_call(rota, config.tz, now, (changes or {}).get(rota.id, NO_CHANGES))
    if not answer.covered:
        return None
    # A change made before a release that took someone out of the directory still names them:
    # who is left on is paged, and the fallback when nobody is.
    on = {m for m in answer.members if org.has_contact(m, role) or m == rota.fallback}
    return on or {rota.fallback}


def on_duty_contacts(
    config: GoldenHourConfig,
    org: Organisation | None,
    role: str,
    now: datetime | None,
    changes: Mapping[str, Changes] | None = None,
) -> list[Contact]:
    """`org`'s contacts of `role` on call at `now` (its rota's fallback in a gap), or every
    contact of the role where no rota says: whom a notice about one of its children reaches."""
    if org is None:
        return []
    on = on_duty(config, org, role, now, changes)
    return [c for c in org.contacts if (c.id in on if on is not None else c.role == role)]
