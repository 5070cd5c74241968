"""Constrained field types shared by the contracts: texts, identifiers, instants, durations, phones.

Each is an `Annotated` type, so a model field states its rule in its hint, and each refusal is a
pydantic error located at the field.
"""

from __future__ import annotations

import re
import unicodedata
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

# Bidi_Control (UAX #9): embeddings, overrides and isolates can make a message read in another
# order than it was written (U+202E turns "...found" around); the marks are invisible.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SPACES = re.compile(r" {2,}")


def _spacing(char: str) -> str:
    """What one character becomes in a line of text: itself, a space, or nothing."""
    if char in _BIDI_CONTROLS or unicodedata.category(char) == "Cs":
        return ""
    # Cc holds C0, DEL and C1 (NUL, CR, LF, tab, NEL...); Zl, Zp are U+2028, U+2029; the other
    # spaces (no-break, ideographic) are spaces to a reader too.
    if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Zs"):
        return " "
    return char


def one_line(text: str) -> str:
    """`text` as one line: controls, line and paragraph breaks and odd spaces become a space,
    bidi controls and lone surrogates go, runs of spaces collapse, the ends are stripped.

    A line break typed into a location must not become a line of its own in an SMS ("STAND
    DOWN..."), and PostgreSQL refuses a NUL in text.
    """
    if text.isprintable() and "  " not in text:
        return text.strip()
    return _SPACES.sub(" ", "".join(_spacing(c) for c in text)).strip()


def _as_line(value: Any) -> Any:
    # Anything but a string is left to the str schema, which refuses it at the field.
    return one_line(value) if isinstance(value, str) else value


ONE_LINE = BeforeValidator(_as_line)
"""Makes a text field's value one line (see `one_line`) before its other rules apply: it goes
after them in `Annotated`, since each item there wraps the ones before it."""

Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), ONE_LINE
]
"""A one-line, non-empty text of at most 40 characters (a word or two: a gender)."""

ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), ONE_LINE
]
"""A one-line, non-empty text of at most 120 characters (a label, a code-like value)."""

FreeText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), ONE_LINE
]
"""A one-line, non-empty text of at most 500 characters (circumstances, a location)."""

LineText = Annotated[str, ONE_LINE]
"""Any text made one line, possibly empty: what we build ourselves (a shared alert's fields)."""

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

Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""A contact's role, the `role` of a policy's `kind.role`: `duty_manager`, `control_room`…"""
