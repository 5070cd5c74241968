"""An organisation's on-call rota for one contact role, as the config file declares it.

The cover is weekly wall-clock time in the config's time zone: each shift starts on some days at
a time and ends at a time on the same day, the next day (an end at or before its start), or on a
named later day (`end: "mon 09:00"`, a whole weekend as one stretch). Bank holidays can count as
cover too, by a calendar the `holidays` library keeps. The members take the shifts in turn, one
shift each (fair however few days the pattern has) or one week each, counted from `starts`.
Resolution is goldenhour/contracts/oncall.py.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from goldenhour.contracts.fields import RecordId, Role
from goldenhour.contracts.policy import ConfigEntry

__all__ = ["Advance", "BankHolidays", "Calendar", "Rota", "ShiftRule", "Weekday"]


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def number(self) -> int:
        """Monday 0 … Sunday 6, as `date.weekday()`."""
        return list(Weekday).index(self)


class Advance(StrEnum):
    per_shift = "per_shift"
    per_week = "per_week"


class Calendar(StrEnum):
    """Bank holiday calendars of the UK's nations, as the `holidays` library names them."""

    england_and_wales = "england_and_wales"
    scotland = "scotland"
    northern_ireland = "northern_ireland"

    @property
    def subdivision(self) -> str:
        return {"england_and_wales": "ENG", "scotland": "SCT", "northern_ireland": "NIR"}[self]


_CLOCK = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun) )?([01]\d|2[0-3]):([0-5]\d)$")
WallClock = Annotated[str, StringConstraints(pattern=_CLOCK.pattern)]


def parse_clock(value: str) -> tuple[Weekday | None, time]:
    """`"17:00"` or `"mon 09:00"`: the day named, if any, and the time."""
    found = _CLOCK.match(value)
    if found is None:
        raise ValueError(f"{value!r} is not HH:MM or a day and HH:MM")
    day, hour, minute = found.groups()
    return (Weekday(day) if day else None), time(int(hour), int(minute))


class ShiftRule(ConfigEntry):
    """Shifts that start on each of `days` at `start` and end at `end`."""

    days: list[Weekday] = Field(min_length=1)
    start: WallClock
    end: WallClock

    @field_validator("start")
    @classmethod
    def _start_has_no_day(cls, value: str) -> str:
        if parse_clock(value)[0] is not None:
            raise ValueError("start is a time (HH:MM): the days say when")
        return value

    @model_validator(mode="after")
    def _one_day_for_a_named_end(self) -> ShiftRule:
        if parse_clock(self.end)[0] is not None and len(self.days) != 1:
            raise PydanticCustomError(
                "rota_end", "an end on a named day belongs to a shift of one start day"
            )
        return self


class BankHolidays(ConfigEntry):
    """Bank holidays of `calendar` are covered from `start` to `end` besides the pattern."""

    calendar: Calendar
    start: WallClock = "09:00"
    end: WallClock = "17:00"


class Rota(ConfigEntry):
    """Who of an organisation's contacts of `role` is on call when."""

    id: RecordId
    role: Role
    shifts: list[ShiftRule] = Field(min_length=1)
    bank_holidays: BankHolidays | None = None
    members: list[RecordId] = Field(min_length=1)
    advance: Advance = Advance.per_shift
    # The first shift starting at or after this instant is the first member's.
    starts: datetime
    # Who is paged when nobody is on (every member away, an override that removed the last).
    fallback: RecordId

    @field_validator("members")
    @classmethod
    def _members_once(cls, members: list[str]) -> list[str]:
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            raise ValueError(f"members are listed once each: {', '.join(repeated)} repeated")
        return members

    @field_validator("starts")
    @classmethod
    def _starts_aware(cls, starts: datetime) -> datetime:
        if starts.tzinfo is None:
            raise ValueError("starts needs an offset or Z: the rota's first shift is an instant")
        return starts
