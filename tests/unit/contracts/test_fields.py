"""Shared field types: durations and phone numbers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contracts.fields import Duration, Phone, format_duration, parse_duration

DURATION = TypeAdapter(Duration)
PHONE = TypeAdapter(Phone)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("90d", timedelta(days=90)),
        ("0m", timedelta(0)),
        (" 2h ", timedelta(hours=2)),
        (45, timedelta(seconds=45)),
        (0, timedelta(0)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_duration_accepted(text: object, expected: timedelta) -> None:
    assert DURATION.validate_python(text) == expected


@pytest.mark.parametrize(
    "text", ["15", "15 m", "1.5h", "15min", "PT15M", "-5m", "", "m", 1.5, -1, True, None, "1w"]
)
def test_duration_refused(text: object) -> None:
    with pytest.raises(ValidationError, match="not a duration"):
        DURATION.validate_python(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=72), "3d"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=90), "90d"),
    ],
)
def test_duration_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert DURATION.dump_python(value, mode="json") == text


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_format_parse_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("smhd"))
def test_duration_parse_of_any_written_form(number: int, unit: str) -> None:
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{number}{unit}") == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("given_", "stored"),
    [
        ("+447700900001", "+447700900001"),  # Ofcom drama range, as in DESIGN.md
        ("+44 7700 900 123", "+447700900123"),
        ("+442079460000", "+442079460000"),
        ("+12025550123", "+12025550123"),
        ("+15005550006", "+15005550006"),
    ],
)
def test_phone_stored_in_e164(given_: str, stored: str) -> None:
    assert PHONE.validate_python(given_) == stored


@pytest.mark.parametrize(
    "bad", ["+4477", "07700900001", "+447700", "+4477009000011", "not a phone", "+999123456789"]
)
def test_phone_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"not a valid phone number '{bad}'")):
        PHONE.validate_python(bad)
