"""Shared field types: durations, phone numbers, and texts that are always one line."""

from __future__ import annotations

import re
import typing
import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, StringConstraints, TypeAdapter, ValidationError

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import Event
from goldenhour.contracts.fields import (
    ONE_LINE,
    Duration,
    FreeText,
    Label,
    LineText,
    Phone,
    ShortText,
    _e164,
    format_duration,
    one_line,
    parse_duration,
)
from goldenhour.contracts.policy import _recipient
from goldenhour.contracts.shared import SharedAlert, SubscriptionRequest
from tests.unit.contracts.models import EVENT_MODELS, walk

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


# --- Free text is one line at the contract. ---------------------------------------------------

TEXTS = {
    "Label": TypeAdapter(Label),
    "ShortText": TypeAdapter(ShortText),
    "FreeText": TypeAdapter(FreeText),
    "LineText": TypeAdapter(LineText),
}
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_characters(text: str) -> list[str]:
    """Controls, line and paragraph separators, bidi controls, lone surrogates; and runs of
    spaces: what no parsed text may hold."""
    bad = [
        c
        for c in text
        if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")
        or c in BIDI_CONTROLS
        or (unicodedata.category(c) == "Zs" and c != " ")
    ]
    return bad + (["  "] if "  " in text else [])


@settings(max_examples=300)
@given(st.sampled_from(sorted(TEXTS)), st.text(max_size=600))
def test_no_parsed_text_holds_a_control_or_a_line_break(kind: str, text: str) -> None:
    try:
        parsed = TEXTS[kind].validate_python(text)
    except ValidationError as e:
        # Refused only for its length or for holding nothing but what was stripped.
        assert {err["type"] for err in e.errors()} <= {"string_too_short", "string_too_long"}
        return
    assert unsafe_characters(parsed) == []
    assert parsed == parsed.strip()


@pytest.mark.parametrize(
    ("given_", "parsed"),
    [
        (
            "Mare St.\r\nSTAND DOWN: child found, no action needed.",
            "Mare St. STAND DOWN: child found, no action needed.",
        ),
        ("Mare\x00 Street", "Mare Street"),
        ("Mare\tStreet\u2028bus\u2029stop\x85", "Mare Street bus stop"),
        ("Mare\u00a0\u00a0Street", "Mare Street"),
        ("red \u202ehoodie\u202c", "red hoodie"),
        ("\u2067Dalston\u2069 Junction\u200f", "Dalston Junction"),
        ("Kingsland Road", "Kingsland Road"),
        ("café près de la gare", "café près de la gare"),
    ],
)
def test_free_text_is_made_one_line(given_: str, parsed: str) -> None:
    assert TEXTS["FreeText"].validate_python(given_) == parsed
    assert one_line(given_) == parsed


@pytest.mark.parametrize("only_controls", ["\x00", "\r\n", "\u202e", " \t\x00\u2028 "])
def test_a_text_of_nothing_but_controls_is_refused_at_its_field(only_controls: str) -> None:
    with pytest.raises(ValidationError) as e:
        TypeAdapter(dict[str, FreeText]).validate_python({"location": only_controls})
    assert [(err["loc"], err["type"]) for err in e.value.errors()] == [
        (("location",), "string_too_short")
    ]


def _text_leaves(annotation: object, metadata: list) -> list[list]:
    """The metadata of each `str` an annotation holds, through Annotated, unions and lists."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *more = typing.get_args(annotation)
        return _text_leaves(base, [*metadata, *more])
    if annotation is str:
        return [metadata]
    if typing.get_origin(annotation) is typing.Literal:
        return []
    return [leaf for arg in typing.get_args(annotation) for leaf in _text_leaves(arg, [])]


# Texts whose validator accepts only a closed set of forms, so no control can pass it.
CLOSED_FORMS = {_e164, _recipient}


def _cleaned(metadata: list) -> bool:
    return any(
        m is ONE_LINE
        or (isinstance(m, StringConstraints) and m.pattern)
        or (isinstance(m, AfterValidator) and m.func in CLOSED_FORMS)
        for m in metadata
    )


INPUT_MODELS = walk(
    [*EVENT_MODELS.values(), GoldenHourConfig, SubscriptionRequest, SharedAlert, Event]
)
# Checked otherwise: a zone name must be a known zone, a policy's name one of a fixed few; a duty
# number is the directory's phone; a derived event's type is written by the streams worker.
NOT_FREE_TEXT = {
    "GoldenHourConfig.timezone",
    "GoldenHourConfig.policies",
    "SharedAlert.duty_number",
    "DerivedEvent.type",
    "_Notification.type",
}


@pytest.mark.parametrize("name", sorted(INPUT_MODELS))
def test_every_text_field_of_events_config_and_subscriptions_is_one_line_or_a_pattern(name):
    model = INPUT_MODELS[name]
    unclean = [
        f"{name}.{field_name}"
        for field_name, field in model.model_fields.items()
        for leaf in _text_leaves(field.annotation, list(field.metadata))
        if not _cleaned(leaf) and f"{name}.{field_name}" not in NOT_FREE_TEXT
    ]
    assert unclean == []


def test_the_field_check_would_catch_a_plain_text() -> None:
    from pydantic import BaseModel

    class Careless(BaseModel):
        location: str | None = None
        tags: list[typing.Annotated[str, StringConstraints(max_length=5)]] = []
        place: FreeText

    found = [
        n
        for n, f in Careless.model_fields.items()
        if any(not _cleaned(leaf) for leaf in _text_leaves(f.annotation, list(f.metadata)))
    ]
    assert found == ["location", "tags"]
