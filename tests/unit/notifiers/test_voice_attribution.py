"""Which unowned call, if any, a voice message without a recorded call may take as its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from goldenhour.notifiers.voice import (
    CALLBACK_WAIT,
    Attribution,
    Listed,
    attribute,
    provider_now,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_no_calls_or_only_owned_ones_leave_nothing_to_take() -> None:
    assert attribute([], set(), NOW) == Attribution("none")
    owned = [Listed("CA1", ago(5)), Listed("CA2", ago(500))]
    assert attribute(owned, {"CA1", "CA2"}, NOW) == Attribution("none")


def test_a_young_unowned_call_is_nobody_s_yet() -> None:
    decided = attribute([Listed("CA1", ago(10))], set(), NOW)
    assert decided.action == "wait" and decided.sid is None
    assert decided.wait_s == (CALLBACK_WAIT - timedelta(seconds=10)).total_seconds()


def test_an_old_unowned_call_is_taken_only_while_no_younger_one_waits() -> None:
    old, young = Listed("CA1", ago(300)), Listed("CA2", ago(1))
    assert attribute([young, old], set(), NOW).action == "wait"
    assert attribute([young, old], {"CA2"}, NOW) == Attribution("claim", sid="CA1")


def test_of_several_overdue_calls_the_earliest_is_taken() -> None:
    calls = [Listed("CA3", ago(200)), Listed("CA2", ago(400)), Listed("CA1", ago(300))]
    assert attribute(calls, set(), NOW) == Attribution("claim", sid="CA2")


def test_the_bound_is_the_callback_wait_given() -> None:
    calls = [Listed("CA1", ago(3))]
    assert attribute(calls, set(), NOW, timedelta(seconds=3)) == Attribution("claim", sid="CA1")
    assert attribute(calls, set(), NOW, timedelta(seconds=4)).action == "wait"


def test_ages_are_by_the_providers_clock_when_it_says():
    said = {"Date": "Thu, 03 Dec 2026 03:10:00 GMT"}
    assert provider_now(said) == datetime(2026, 12, 3, 3, 10, tzinfo=UTC)
    assert provider_now({"date": "not a date"}).tzinfo is not None  # this host's, as a fallback
    assert provider_now(None).tzinfo is not None
