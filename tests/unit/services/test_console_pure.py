"""The console's pure parts: board filters, form times, CSRF comparison, step labels."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from goldenhour.services.console.board import BoardFilters
from goldenhour.services.console.forms import form_time
from goldenhour.services.console.sessions import csrf_ok
from goldenhour.services.console.web import safe_next

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 3, 12, tzinfo=UTC)
REQUEST = SimpleNamespace(
    app=SimpleNamespace(state=SimpleNamespace(config=SimpleNamespace(tz=LONDON)))
)


def test_blank_filters_mean_all():
    f = BoardFilters.model_validate({"authority": "", "risk": "", "acknowledged": ""})
    assert (f.authority, f.risk, f.acknowledged) == (None, None, None)


def test_unknown_filter_values_are_refused():
    with pytest.raises(ValidationError):
        BoardFilters.model_validate({"risk": "catastrophic"})


def test_form_time_reads_the_configured_zone_across_the_summer_change():
    assert form_time(REQUEST, "2026-07-01T23:30", NOW) == "2026-07-01T23:30:00+01:00"
    assert form_time(REQUEST, "2026-11-23T03:00", NOW) == "2026-11-23T03:00:00+00:00"


def test_form_time_blank_is_now_and_nonsense_is_passed_on_to_validation():
    assert form_time(REQUEST, "", NOW) == NOW.isoformat()
    assert form_time(REQUEST, None, NOW) == NOW.isoformat()
    assert form_time(REQUEST, "yesterday-ish", NOW) == "yesterday-ish"


def test_csrf_compares_exactly():
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd")
    assert not csrf_ok("abc", "")
    assert not csrf_ok("abc", None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/alerts/1", "/console/alerts/1"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/api/v1/alerts", "/console"),
        (None, "/console"),
    ],
)
def test_sign_in_only_returns_to_a_console_page(given, expected):
    assert safe_next(given, "/console") == expected
