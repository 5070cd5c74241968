"""Bodies of the HTTP API's answers: alerts and their timeline, and the one shape of an error."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


class FieldError(BaseModel):
    """One input refused: where it was (`["body", "data", "last_seen_at"]`), why, and a code."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the API, whatever raised it: a sentence, or the fields at fault."""

    detail: str | list[FieldError]


class Health(BaseModel):
    """The answer to GET /healthz."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """The answer to GET /readyz: `ready`, or `unavailable` with one reason per part at fault."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "unavailable"]
    outbox_relay_active: bool


class EventAccepted(_View):
    """The answer to POST /events."""

    event_id: UUID
    status: Literal["accepted", "duplicate"]


class AlertSummary(_View):
    """One alert in a list."""

    alert_id: UUID
    child_id: str
    kind: str
    status: Literal["open", "acknowledged", "resolved"]
    risk_level: str
    last_seen_at: datetime = Field(validation_alias="anchor_at")
    last_seen_location: str | None
    local_authority: str
    care_home: str | None
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    next_due_at: datetime | None


class StepView(_View):
    """One escalation step: fired, skipped or cancelled, and when."""

    step_key: str
    due_at: datetime
    status: str
    decided_at: datetime
    detail: str | None


class NotificationView(_View):
    """One message to one contact over one channel, with its delivery status."""

    notification_id: UUID
    step_key: str
    contact_id: str
    org_code: str
    channel: str
    status: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class AckView(_View):
    """Who acknowledged, as which user or contact, over which channel, when."""

    org_code: str
    user_id: str | None
    contact_id: str | None
    via: str
    acknowledged_at: datetime


class AlertDetail(AlertSummary):
    """One alert with the timeline every agency sees."""

    steps: list[StepView]
    notifications: list[NotificationView]
    acknowledgements: list[AckView]


class AckAnswer(_View):
    """The answer to POST /alerts/{id}/ack."""

    alert_id: UUID
    status: str
    acknowledged: bool


class PlacementView(_View):
    """A child's current placement."""

    placement_id: str
    care_home: str
    started_at: datetime
    checkin_interval_minutes: int | None
    curfew: str | None


class EpisodeView(_View):
    """One missing episode: when the child was last seen, and how it ended."""

    alert_id: UUID
    last_seen_at: datetime = Field(validation_alias="anchor_at")
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None


class RiskSignalView(_View):
    """A risk signal logged for the child and what it did to the child's risk."""

    kind: str
    detail: str | None
    occurred_at: datetime
    risk_before: str
    risk_after: str


class ClockView(_View):
    """A pending watcher clock: what runs out, and when."""

    kind: str
    due_at: datetime


class ChildRecord(_View):
    """The answer to GET /children/{id}: the child's risk, placement, concerns and episodes."""

    child_id: str
    local_authority: str
    risk_level: str
    identified_at: datetime
    exploitation_types: list[str]
    description: dict
    last_checkin_at: datetime | None
    placement: PlacementView | None
    open_alerts: list[AlertSummary]
    episodes: list[EpisodeView]
    episodes_in_window: int
    risk_signals: list[RiskSignalView]
    clocks: list[ClockView]
    return_interview_due_at: datetime | None
