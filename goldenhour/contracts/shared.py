"""Shared alerts and subscriptions: what a neighbouring authority may receive, and how it asks.

A shared alert is data-minimised by construction: the model holds a fixed allow-list of fields
and refuses any other, so nothing else (no name, nationality, immigration or NRM status,
exploitation detail) can be put into one. The allow-list keeps the structured description (age
estimate, gender, height, languages), the clothing and the last-seen place; the free-text
distinguishing features stay in the child's record and the own agencies' email, since whatever a
reporter typed there (a name, a nationality) would reach every neighbour. Its texts are one line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from goldenhour.contracts.events import ChildId, ExploitationType, RiskLevel
from goldenhour.contracts.fields import MAX_LIST, FreeText, LineText, OrgCode, RecordId, ShortText

# Fields shared alerts once carried and no longer do: a stored one still reads, without them.
_RETIRED_FIELDS = ("distinguishing_features",)


class SharedAlert(BaseModel):
    """The only content a neighbouring authority ever receives about a missing child."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shared_id: UUID
    alert_reference: UUID
    msg_type: Literal["Alert", "Update", "Cancel"]
    version: int = Field(ge=1)
    sent_at: AwareDatetime
    case_reference: ChildId
    age_estimate: int | None = None
    gender: LineText | None = None
    height_cm: int | None = None
    clothing: LineText | None = None
    languages: list[LineText] = Field(default_factory=list)
    last_seen_at: AwareDatetime
    last_seen_location: LineText | None = None
    risk_level: RiskLevel
    issuing_authority: OrgCode
    issuing_authority_name: LineText
    duty_number: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _without_retired_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(f in data for f in _RETIRED_FIELDS):
            return {k: v for k, v in data.items() if k not in _RETIRED_FIELDS}
        return data


SHARED_FIELDS = frozenset(SharedAlert.model_fields)


class Delivery(BaseModel):
    """How a subscription is delivered: contacts of the subscribing organisation, a webhook."""

    model_config = ConfigDict(extra="forbid")

    contacts: list[RecordId] = Field(default_factory=list, max_length=MAX_LIST)
    channels: list[Literal["sms", "email"]] = Field(default_factory=list, max_length=2)
    webhook_url: AnyHttpUrl | None = None


class SubscriptionRequest(BaseModel):
    """The body of POST /api/v1/subscriptions; every field but `deliver` is optional."""

    model_config = ConfigDict(extra="forbid")

    source_authorities: list[OrgCode] | None = Field(default=None, max_length=MAX_LIST)
    min_risk: RiskLevel = RiskLevel.low
    exploitation_types: list[ExploitationType] = Field(default_factory=list, max_length=MAX_LIST)
    deliver: Delivery


class SubscriptionView(BaseModel):
    """A subscription as its organisation sees it (the webhook secret only at creation)."""

    subscription_id: UUID
    org_code: str
    source_authorities: list[str]
    min_risk: str
    exploitation_types: list[str]
    contacts: list[str]
    channels: list[str]
    webhook_url: str | None
    status: str
    created_at: datetime
    created_by: ShortText
    webhook_secret: str | None = None
    consecutive_failures: int = 0
    note: FreeText | None = None


class SharedAlertPublished(BaseModel):
    """A shared alert (or its update or cancellation) as published on its own Kafka topic."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    type: Literal["shared_alert.published"] = "shared_alert.published"
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    child_id: ChildId
    alert_id: UUID
    shared: SharedAlert
