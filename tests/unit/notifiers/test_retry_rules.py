"""When a failed message is tried again and when it stops: pure, over fixed datetimes."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.notifiers import retry_rules as rules

T0 = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
ALERT = uuid.uuid4()


def msg(**kw) -> rules.Attempted:
    base = {
        "channel": "sms",
        "step_key": "0m-1a2b3c4d",
        "attempts": 3,
        "created_at": T0,
        "alert_id": ALERT,
        "alert_status": "open",
    }
    return rules.Attempted(**{**base, **kw})


def test_an_open_alerts_message_is_retried_however_many_attempts() -> None:
    # The old rule gave up after 10; an alert's SMS now outlasts a long outage.
    for attempts in (1, 10, 11, 500):
        decision = rules.after_failure(
            msg(attempts=attempts), None, T0 + timedelta(hours=3), random.Random(1)
        )
        assert decision.action == "retry" and 0 < decision.wait_s <= rules.BACKOFF_CAP_S


@pytest.mark.parametrize(
    ("status", "step_key", "action", "word"),
    [
        ("resolved", "0m-1a2b3c4d", "cancel", "resolved"),
        ("resolved", "r2", "cancel", "resolved"),
        # A reminder says "not yet acknowledged": after an acknowledgement it is not sent.
        ("acknowledged", "r2", "cancel", "acknowledged"),
        # A step's message still matters: the police must hear whoever acknowledged first.
        ("acknowledged", "0m-1a2b3c4d", "retry", None),
    ],
)
def test_the_alert_standing_down_cancels_its_retries(status, step_key, action, word) -> None:
    m = msg(alert_status=status, step_key=step_key)
    decision = rules.after_failure(m, None, T0 + timedelta(minutes=5), random.Random(2))
    assert decision.action == action
    if word:
        assert word in (decision.reason or "")
    assert rules.stop(m, T0 + timedelta(minutes=5)) == (None if action == "retry" else decision)


@pytest.mark.parametrize(
    "m",
    [
        msg(step_key="stand_down", alert_status="resolved"),
        msg(step_key="unreachable.0m-1a2b3c4d.mps-cr", alert_status="acknowledged"),
        msg(alert_id=None, alert_status=None, step_key="operations:dead_letter:7"),
    ],
    ids=["stand-down", "unreachable-notice", "operations"],
)
def test_lasting_messages_retry_for_a_day_then_fail(m: rules.Attempted) -> None:
    rng = random.Random(3)
    assert rules.after_failure(m, None, T0 + timedelta(hours=23, minutes=59), rng).action == "retry"
    late = rules.after_failure(m, None, T0 + rules.LASTING_FOR, rng)
    assert late.action == "fail" and "gave up" in (late.reason or "")


def test_webhooks_keep_a_bounded_attempt_count() -> None:
    rng = random.Random(4)
    hook = msg(channel="webhook", attempts=rules.WEBHOOK_MAX_ATTEMPTS - 1)
    assert rules.after_failure(hook, None, T0, rng).action == "retry"
    last = msg(channel="webhook", attempts=rules.WEBHOOK_MAX_ATTEMPTS)
    assert rules.after_failure(last, None, T0, rng).action == "fail"


@given(st.integers(1, 60), st.one_of(st.none(), st.floats(0, 3600)), st.integers(0, 2**32))
def test_retry_after_is_honoured_up_to_the_cap(
    attempts: int, retry_after: float | None, seed: int
) -> None:
    wait = rules.backoff(attempts, retry_after, random.Random(seed))
    assert min(retry_after or 0.0, rules.BACKOFF_CAP_S) <= wait <= rules.BACKOFF_CAP_S
    assert wait > 0


def test_a_retry_after_of_an_hour_waits_the_cap() -> None:
    assert rules.backoff(1, 3600.0, random.Random(0)) == rules.BACKOFF_CAP_S
    assert rules.backoff(1, 45.0, random.Random(0)) == 45.0


def test_a_look_that_keeps_failing_is_abandoned_after_its_patience() -> None:
    failing_since = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    patience = rules.LOOK_PATIENCE
    assert not rules.look_abandoned(None, failing_since + timedelta(hours=1))  # no look failed
    assert not rules.look_abandoned(failing_since, failing_since + patience - timedelta(seconds=1))
    assert rules.look_abandoned(failing_since, failing_since + patience)
    assert rules.look_abandoned(failing_since, failing_since + timedelta(seconds=5), timedelta(0))
