"""The failover and unreachable rules, over fixed datetimes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from goldenhour.notifiers.failover_rules import (
    Message,
    grouped,
    needs_failover,
    unreachable,
    unreachable_step,
)

T0 = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
ALERT = uuid.UUID(int=1)
AFTER = timedelta(minutes=2)
UNREACHABLE = timedelta(minutes=5)


def msg(channel: str, status: str, at: timedelta = timedelta(0), **kw: object) -> Message:
    fields: dict = dict(
        notification_id=uuid.uuid4(),
        alert_id=ALERT,
        step_key="s0",
        contact_id="met-cr",
        channel=channel,
        status=status,
        created_at=T0 + at,
    )
    fields.update(kw)
    return Message(**fields)


@pytest.mark.parametrize(
    ("status", "elapsed", "expected"),
    [
        ("pending", timedelta(seconds=119), False),
        ("pending", timedelta(minutes=2), True),
        ("sending", timedelta(minutes=3), True),
        ("failed", timedelta(0), True),  # failed for good: at once
        ("sent", timedelta(minutes=10), False),
        ("delivered", timedelta(minutes=10), False),
        ("cancelled", timedelta(minutes=10), False),
    ],
)
def test_sms_not_accepted_in_time_fails_over(
    status: str, elapsed: timedelta, expected: bool
) -> None:
    sms = msg("sms", status)
    assert needs_failover(sms, [sms], T0 + elapsed, AFTER) is expected


def test_failover_is_once_per_step_and_contact() -> None:
    sms = msg("sms", "pending")
    call = msg("voice", "pending", failover_of=sms.notification_id)
    assert needs_failover(sms, [sms, call], T0 + timedelta(minutes=5), AFTER) is False


@pytest.mark.parametrize("step_key", [unreachable_step("lbh-dm1"), "stand_down"])
def test_notices_and_stand_downs_never_fail_over(step_key: str) -> None:
    sms = msg("sms", "failed", step_key=step_key)
    assert needs_failover(sms, [sms], T0 + timedelta(hours=1), AFTER) is False


def test_only_sms_fails_over() -> None:
    email = msg("email", "failed")
    assert needs_failover(email, [email], T0 + timedelta(hours=1), AFTER) is False


def test_nothing_accepted_for_unreachable_after_is_reported() -> None:
    sms = msg("sms", "pending")
    call = msg("voice", "sending", timedelta(minutes=2))
    group = [sms, call]
    assert unreachable(group, T0 + timedelta(minutes=4, seconds=59), UNREACHABLE) is None
    found = unreachable(group, T0 + timedelta(minutes=5), UNREACHABLE)
    assert found is not None and not found.reached
    assert set(found.covers) == {sms.notification_id, call.notification_id}
    assert "sms pending" in found.why and "voice sending" in found.why


def test_every_channel_failed_is_reported_at_once() -> None:
    group = [msg("sms", "failed", last_error="invalid number"), msg("voice", "failed")]
    found = unreachable(group, T0 + timedelta(seconds=5), UNREACHABLE)
    assert found is not None and "invalid number" in found.why


def test_a_contact_reached_while_nothing_failed_is_not_reported() -> None:
    group = [msg("sms", "pending"), msg("voice", "delivered", timedelta(minutes=2))]
    assert unreachable(group, T0 + timedelta(hours=1), UNREACHABLE) is None


def test_a_failed_message_is_reported_once_the_others_settle_even_when_reached() -> None:
    failed = msg("sms", "failed", last_error="provider error 30003")
    call = msg("voice", "pending", timedelta(seconds=1))
    assert unreachable([failed, call], T0 + timedelta(seconds=30), UNREACHABLE) is None
    delivered = msg("voice", "delivered", timedelta(seconds=1))
    found = unreachable([failed, delivered], T0 + timedelta(seconds=30), UNREACHABLE)
    assert found is not None and found.reached and found.covers == (failed.notification_id,)


def test_cancelled_messages_are_no_one_unreachable() -> None:
    group = [msg("sms", "cancelled"), msg("email", "cancelled")]
    assert unreachable(group, T0 + timedelta(hours=1), UNREACHABLE) is None


def test_grouped_by_alert_step_and_contact_oldest_first() -> None:
    late = msg("voice", "pending", timedelta(minutes=2))
    early = msg("sms", "pending")
    other = msg("sms", "pending", contact_id="lbh-dm1")
    groups = grouped([late, other, early])
    assert groups[(ALERT, "s0", "met-cr")] == [early, late]
    assert groups[(ALERT, "s0", "lbh-dm1")] == [other]


def test_after_an_acknowledgement_only_failures_are_reported() -> None:
    waiting = [msg("sms", "pending"), msg("voice", "sending", timedelta(minutes=2))]
    assert unreachable(waiting, T0 + timedelta(hours=1), UNREACHABLE, alert_open=False) is None
    failed = [msg("sms", "failed"), msg("email", "failed")]
    assert unreachable(failed, T0 + timedelta(seconds=1), UNREACHABLE, alert_open=False)
