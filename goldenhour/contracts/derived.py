"""Derived events: what Golden Hour itself emits on Kafka about alerts and notifications (v1).

Like intake events they are keyed by `child_id` and carry a case reference, never a name.
Consumers are idempotent on `event_id`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

from goldenhour.contracts.events import ChildId, RiskLevel
from goldenhour.contracts.fields import FreeText, RecordId, ShortText

StepKey = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
]
"""A stable key of one escalation step (`s0`, `s1`…) or re-notification round (`r1`…)."""

Channel = Literal["sms", "email", "webhook"]


class DerivedEvent(BaseModel):
    """The envelope fields every derived event shares."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    child_id: ChildId


class AlertRaised(DerivedEvent):
    """An alert opened; its escalation clock runs from `anchor_at`."""

    type: Literal["alert.raised"] = "alert.raised"
    alert_id: UUID
    kind: ShortText  # "missing", "identification", "welfare_concern", "return_interview", …
    risk_level: RiskLevel
    anchor_at: AwareDatetime
    policy: ShortText  # the key of the escalation policy in force, e.g. "high"


class AlertUpdated(DerivedEvent):
    """An open alert's facts changed (risk raised, an earlier last-seen time, a new location)."""

    type: Literal["alert.updated"] = "alert.updated"
    alert_id: UUID
    risk_level: RiskLevel
    anchor_at: AwareDatetime
    last_seen_location: FreeText | None = None


class StepFired(DerivedEvent):
    """An escalation step or re-notification round fell due and was acted on."""

    type: Literal["alert.step_fired"] = "alert.step_fired"
    alert_id: UUID
    step_key: StepKey
    # Not bounded by 20 like intake lists: a step may reach every contact of several agencies.
    contact_ids: list[RecordId] = Field(default_factory=list, max_length=1000)


class _Notification(DerivedEvent):
    """The fields that identify one message to one contact over one channel for one step."""

    notification_id: UUID
    alert_id: UUID
    channel: Channel
    contact_id: RecordId
    step_key: StepKey


class NotificationRequested(_Notification):
    """A message should be sent; the dispatcher sends it at most once per id."""

    type: Literal["notification.requested"] = "notification.requested"


class NotificationSent(_Notification):
    """The provider accepted the message."""

    type: Literal["notification.sent"] = "notification.sent"
    provider_id: ShortText  # Twilio message SID or SMTP Message-ID


class NotificationDelivered(_Notification):
    """The provider reported the message delivered."""

    type: Literal["notification.delivered"] = "notification.delivered"
    provider_id: ShortText | None = None


class NotificationFailed(_Notification):
    """The message could not be delivered (after the dispatcher's retries)."""

    type: Literal["notification.failed"] = "notification.failed"
    error: FreeText
    provider_id: ShortText | None = None


class AlertAcknowledged(DerivedEvent):
    """Someone told the system they are acting; re-notification and later conditional steps stop."""

    type: Literal["alert.acknowledged"] = "alert.acknowledged"
    alert_id: UUID
    by_user: RecordId | None = None
    by_contact: RecordId | None = None
    via: Literal["api", "sms", "email", "console", "voice"]
    at: AwareDatetime

    @model_validator(mode="after")
    def _someone(self) -> AlertAcknowledged:
        # The shared timeline must say who acknowledged (DESIGN.md rule 5).
        if self.by_user is None and self.by_contact is None:
            raise PydanticCustomError(
                "ack_without_actor", "an acknowledgement needs by_user or by_contact"
            )
        return self


class AlertResolved(DerivedEvent):
    """The alert closed (child located, placement ended, interview held); pending steps cancel."""

    type: Literal["alert.resolved"] = "alert.resolved"
    alert_id: UUID
    at: AwareDatetime
    reason: ShortText


AnyDerived = Annotated[
    AlertRaised
    | AlertUpdated
    | StepFired
    | NotificationRequested
    | NotificationSent
    | NotificationDelivered
    | NotificationFailed
    | AlertAcknowledged
    | AlertResolved,
    Field(discriminator="type"),
]
"""Any derived event, told apart by `type`."""

DERIVED_TYPES: dict[str, type[DerivedEvent]] = {
    model.model_fields["type"].default: model
    for model in (
        AlertRaised,
        AlertUpdated,
        StepFired,
        NotificationRequested,
        NotificationSent,
        NotificationDelivered,
        NotificationFailed,
        AlertAcknowledged,
        AlertResolved,
    )
}

_ADAPTER: TypeAdapter[AnyDerived] = TypeAdapter(AnyDerived)


def parse_derived(raw: bytes | str | dict[str, Any]) -> DerivedEvent:
    """Validate a derived event from a Kafka value (JSON) or a dict; `ValidationError` if bad."""
    if isinstance(raw, dict):
        return _ADAPTER.validate_python(raw)
    return _ADAPTER.validate_json(raw)
