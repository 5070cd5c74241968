"""Constrained field types shared by the contracts: texts, identifiers, instants, durations, phones.

Each is an `Annotated` type, so a model field states its rule in its hint, and each refusal is a
pydantic error located at the field.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

import phonenumbers
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

MAX_LIST = 20
"""The most items a list in a submitted event may hold."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
"""A stripped, non-empty text of at most 120 characters (a label, a code-like value)."""

FreeText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
"""A stripped, non-empty text of at most 500 characters (circumstances, a location)."""

RecordId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._-]{1,64}$")
]
"""An identifier people choose (placement, user, contact): 1–64 of `[A-Za-z0-9._-]`."""

OrgCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9_-]{2,16}$")]
"""An organisation's code in the directory, e.g. `LBH`: 2–16 of `[A-Z0-9_-]`."""

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of the server clock a submitted instant may be (skew between devices)."""


def _not_future(value: datetime, info: ValidationInfo) -> datetime:
    # Checked only when the caller passes `now`: a record re-read later must still parse.
    now = (info.context or {}).get("now")
    if now is not None and value > now + FUTURE_TOLERANCE:
        raise PydanticCustomError(
            "future_timestamp",
            "{field} is {ahead} ahead of the server clock (at most 5 minutes allowed)",
            {"field": info.field_name, "ahead": str(value - now)},
        )
    return value


PastTime = Annotated[AwareDatetime, AfterValidator(_not_future)]
"""A timezone-aware instant; with `now` in the validation context, at most 5 minutes after it."""

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> timedelta:
    """`30s`, `15m`, `1h`, `90d` or a bare int of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    else:
        seconds = -1  # refused below, with the same message
    if seconds < 0 or seconds != int(seconds):
        raise PydanticCustomError(
            "duration",
            "not a duration '{value}': use a whole number and s, m, h or d (30s, 15m, 1h, 90d)",
            {"value": str(value)},
        )
    return timedelta(seconds=int(seconds))


def format_duration(value: timedelta) -> str:
    """The shortest exact form of a whole-second duration: 90d, 1h, 15m, 30s."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A non-negative whole-second duration written `30s`, `15m`, `1h`, `90d` (or int seconds)."""

# Ofcom keeps these UK ranges for drama, so libphonenumber calls them invalid; yet DESIGN.md's
# example and the tests use them precisely because they can never reach a real person.
_FICTIONAL_UK = re.compile(r"^\+44(7700900|2079460|1632960)\d{3}$")


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(number) or _FICTIONAL_UK.match(e164):
            return e164
    raise PydanticCustomError(
        "phone", "not a valid phone number '{value}' (E.164, e.g. +447700900001)", {"value": value}
    )


Phone = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_e164)]
"""A valid phone number in international form, stored as E.164 (`+447700900001`)."""
