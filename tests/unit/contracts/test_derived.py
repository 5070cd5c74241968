"""Derived events: every type round-trips through JSON and is told apart by `type`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from goldenhour.contracts.derived import (
    DERIVED_TYPES,
    AlertAcknowledged,
    AlertRaised,
    AlertResolved,
    AlertUpdated,
    DerivedEvent,
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
    NotificationSent,
    StepFired,
    parse_derived,
)
from goldenhour.contracts.events import RiskLevel

NOW = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
ALERT = uuid.uuid4()
BASE: dict[str, Any] = {"occurred_at": NOW, "child_id": "LBH-2026-0042"}
NOTE: dict[str, Any] = {
    "notification_id": uuid.uuid4(),
    "alert_id": ALERT,
    "channel": "sms",
    "contact_id": "mps-cr",
    "step_key": "s0",
}

SAMPLES: list[DerivedEvent] = [
    AlertRaised(**BASE, alert_id=ALERT, kind="missing", risk_level=RiskLevel.high,
                anchor_at=NOW, policy="high"),
    AlertUpdated(**BASE, alert_id=ALERT, risk_level="medium", anchor_at=NOW,
                 last_seen_location="Stratford"),
    StepFired(**BASE, alert_id=ALERT, step_key="r1", contact_ids=["mps-cr", "lbh-duty"]),
    NotificationRequested(**BASE, **NOTE),
    NotificationSent(**BASE, **NOTE, provider_id="SM123"),
    NotificationDelivered(**BASE, **NOTE),
    NotificationFailed(**BASE, **NOTE, error="undeliverable"),
    AlertAcknowledged(**BASE, alert_id=ALERT, by_contact="lbh-duty", via="sms", at=NOW),
    AlertResolved(**BASE, alert_id=ALERT, at=NOW, reason="located: found_safe"),
]  # fmt: skip


def test_type_names() -> None:
    assert set(DERIVED_TYPES) == {
        "alert.raised", "alert.updated", "alert.step_fired", "notification.requested",
        "notification.sent", "notification.delivered", "notification.failed",
        "alert.acknowledged", "alert.resolved",
    }  # fmt: skip
    assert {type(s) for s in SAMPLES} == set(DERIVED_TYPES.values())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_json_round_trip(event: DerivedEvent) -> None:
    raw = event.model_dump_json()
    again = parse_derived(raw)
    assert type(again) is type(event)
    assert again == event
    assert parse_derived(raw.encode()) == event
    assert parse_derived(event.model_dump(mode="json")) == event
    assert again.schema_version == 1
    assert isinstance(again.event_id, uuid.UUID)


def test_each_event_gets_its_own_id() -> None:
    a = NotificationRequested(**BASE, **NOTE)
    b = NotificationRequested(**BASE, **NOTE)
    assert a.event_id != b.event_id


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"channel": "pigeon"}, ("notification.requested", "channel")),
        ({"child_id": "Amina"}, ("notification.requested", "child_id")),
        ({"occurred_at": "2026-11-22T21:40:00"}, ("notification.requested", "occurred_at")),
        ({"submitted_by": "x"}, ("notification.requested", "submitted_by")),
    ],
)
def test_refusals(change: dict[str, Any], loc: tuple[str, ...]) -> None:
    body = NotificationRequested(**BASE, **NOTE).model_dump(mode="json") | change
    with pytest.raises(ValidationError) as exc:
        parse_derived(body)
    assert [tuple(e["loc"]) for e in exc.value.errors()] == [loc]


def test_unknown_type_refused() -> None:
    body = NotificationRequested(**BASE, **NOTE).model_dump(mode="json") | {"type": "alert.boom"}
    with pytest.raises(ValidationError, match="alert.boom") as exc:
        parse_derived(body)
    assert exc.value.errors()[0]["type"] == "union_tag_invalid"


def test_acknowledgement_names_who() -> None:
    with pytest.raises(ValidationError, match="by_user or by_contact"):
        AlertAcknowledged(**BASE, alert_id=ALERT, via="api", at=NOW)
    ack = AlertAcknowledged(**BASE, alert_id=ALERT, by_user="lbh-dm1", via="console", at=NOW)
    assert ack.by_contact is None
