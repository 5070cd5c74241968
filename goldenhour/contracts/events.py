"""Intake events: the envelope and the data of every event an agency may submit (schema v1).

Safeguarding: no model here carries a child's name, nationality or immigration status, and
`child_id` is a case reference that must contain a digit, so a bare name is refused at the door.
"""

from __future__ import annotations

import builtins
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from goldenhour.contracts.fields import (
    MAX_LIST,
    FreeText,
    Label,
    OrgCode,
    PastTime,
    RecordId,
    ShortText,
)


def _has_digit(value: str) -> str:
    # A case reference always carries a number; a bare name ("Amina") never does.
    if not any(c.isdigit() for c in value):
        raise PydanticCustomError(
            "child_id_not_reference",
            # The value is not repeated: it may be a child's name.
            "child_id must be a case reference containing a digit, never a name",
            {},
        )
    return value


def _born_by_now(value: date, info: ValidationInfo) -> date:
    now = (info.context or {}).get("now")
    if value < date(1990, 1, 1) or (now is not None and value > now.date()):
        raise PydanticCustomError(
            "date_of_birth",
            "date_of_birth must be a past date from 1990 on ({value})",
            {"value": value.isoformat()},
        )
    return value


BirthDate = Annotated[date, AfterValidator(_born_by_now)]

CHILD_ID_PATTERN = r"^[A-Za-z0-9._-]{3,64}$"

ChildId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=CHILD_ID_PATTERN),
    AfterValidator(_has_digit),
    # The schema states the digit rule too, so a client refuses a name before sending it; the
    # validators above stay apart so that a bare name is told why, not shown a pattern.
    Field(
        json_schema_extra={
            "pattern": r"^[A-Za-z._-]{0,63}[0-9][A-Za-z0-9._-]{0,63}$",
            "minLength": 3,
            "maxLength": 64,
        }
    ),
]
"""A case reference: 3–64 of `[A-Za-z0-9._-]` with at least one digit.

The digit rule is safeguarding, not syntax: a case reference always carries a number, so a bare
name such as "Amina" is refused before it can reach a log, a topic or an SMS.
"""


class RiskLevel(StrEnum):
    """A child's assessed risk of going missing or being re-trafficked."""

    high = "high"
    medium = "medium"
    low = "low"

    @property
    def rank(self) -> int:
        """Higher is riskier: low 1, medium 2, high 3."""
        return _RISK_RANK[self]


_RISK_RANK = {RiskLevel.low: 1, RiskLevel.medium: 2, RiskLevel.high: 3}


class ExploitationType(StrEnum):
    """The form of exploitation the child was identified as a victim of."""

    sexual = "sexual"
    labour = "labour"
    domestic_servitude = "domestic_servitude"
    criminal = "criminal"
    cannabis_cultivation = "cannabis_cultivation"
    other = "other"


class RiskSignalKind(StrEnum):
    """A warning sign that a child may be about to go missing."""

    trafficker_contact = "trafficker_contact"
    unknown_visitor = "unknown_visitor"
    new_phone = "new_phone"
    unexplained_money = "unexplained_money"
    absent_from_education = "absent_from_education"
    other = "other"


class AbsenceClassification(StrEnum):
    """The Department for Education's two kinds of absence, as the SSDA903 return counts them."""

    missing = "missing"  # not where they should be, and whereabouts not known
    away = "away"  # absent from the placement without authorisation, whereabouts known


class LocatedStatus(StrEnum):
    """How a missing child was found."""

    returned = "returned"
    found_safe = "found_safe"
    found_harmed = "found_harmed"
    in_custody = "in_custody"


class EventType(StrEnum):
    """The intake event types of DESIGN.md, and `child.transferred`."""

    child_identified = "child.identified"
    child_transferred = "child.transferred"
    placement_started = "placement.started"
    placement_ended = "placement.ended"
    checkin_recorded = "checkin.recorded"
    risk_signal = "risk.signal"
    absence_reported = "absence.reported"
    child_located = "child.located"
    return_interview_completed = "return_interview.completed"


class _Data(BaseModel):
    """Base of event data: unknown keys refused, strings stripped, immutable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ChildDescription(_Data):
    """What responders need to recognise the child; deliberately no name or nationality."""

    age_estimate: int | None = Field(default=None, ge=0, le=25)
    gender: Label | None = None
    height_cm: int | None = Field(default=None, ge=30, le=250)
    build: ShortText | None = None
    clothing: FreeText | None = None
    distinguishing_features: FreeText | None = None
    # Kept as typed in the record; a neighbour gets only the ISO 639 names `contracts.languages`
    # knows, never this text.
    languages: list[Label] = Field(default_factory=list, max_length=MAX_LIST)


class NrmReferral(_Data):
    """The child's National Referral Mechanism referral (never shared outside its agencies)."""

    # Free text: NRM stages are named differently across the UK nations.
    status: ShortText | None = None
    referred_at: PastTime | None = None


class ChildIdentified(_Data):
    """A child was identified as a (presumed) victim of trafficking.

    Recorded once per child: for a child already known it is refused (409) whoever sends it, so
    neither the authority nor the risk can change as its side effect. The authority changes
    with `child.transferred`; the risk with a placement's risk assessment or a `risk.signal`.
    """

    risk_level: RiskLevel
    local_authority: OrgCode
    exploitation_types: list[ExploitationType] = Field(default_factory=list, max_length=MAX_LIST)
    unaccompanied: bool | None = None
    description: ChildDescription | None = None
    nrm_referral: NrmReferral | None = None
    # For the statutory return only: never in an SMS, a shared alert or a CAP message. Often
    # estimated for these children (an age assessment), and said so.
    date_of_birth: BirthDate | None = None
    date_of_birth_estimated: bool = False
    # The authority's own child id in its SSDA903 return (its `CHILD` column).
    ssda903_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,10}$")] | None = None


class ChildTransferred(_Data):
    """The child's case moved to another local authority.

    Accepted only from the child's current local authority or a national unit, and only to a
    local authority of the directory. The child's record and every alert still open move with
    it: the new authority (and its police force) sees them and is told at later steps; the old
    one no longer does.
    """

    local_authority: OrgCode
    reason: FreeText | None = None


class PlacementRisk(_Data):
    """The risk assessment made for a placement."""

    level: RiskLevel
    factors: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST)


class PlacementStarted(_Data):
    """The child was placed with a care home.

    A placement belongs to one child: a `placement_id` another child holds is refused (409).
    The same child may be placed again under the same id. Every alert of the child still open
    follows it to the new care home.
    """

    placement_id: RecordId
    care_home: OrgCode
    risk: PlacementRisk | None = None
    checkin_interval_minutes: int | None = Field(default=None, ge=1, le=10080)
    curfew: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] | None = (
        None
    )
    """Local wall-clock time `HH:MM` (00:00–23:59) in the configured timezone."""


class PlacementEnded(_Data):
    """A placement ended."""

    placement_id: RecordId
    reason: FreeText | None = None


class CheckinRecorded(_Data):
    """Care staff saw the child."""

    placement_id: RecordId
    seen_at: PastTime | None = None


class RiskSignal(_Data):
    """A warning sign was observed."""

    kind: RiskSignalKind
    detail: FreeText | None = None


class AbsenceReported(_Data):
    """The child is not where expected; the escalation clock starts at `last_seen_at`.

    `classification` is `missing` unless the reporter knows where the child is (`away`): when
    in doubt, missing, the safer error."""

    last_seen_at: PastTime
    classification: AbsenceClassification = AbsenceClassification.missing
    last_seen_location: FreeText | None = None
    circumstances: FreeText | None = None
    clothing: FreeText | None = None
    placement_id: RecordId | None = None


class ChildLocated(_Data):
    """A missing child was found."""

    located_at: PastTime
    location: FreeText | None = None
    status: LocatedStatus | None = None


class ReturnInterviewCompleted(_Data):
    """The return home interview after an episode was held."""

    completed_at: PastTime
    by: ShortText | None = None


EVENT_DATA: dict[EventType, type[BaseModel]] = {
    EventType.child_identified: ChildIdentified,
    EventType.child_transferred: ChildTransferred,
    EventType.placement_started: PlacementStarted,
    EventType.placement_ended: PlacementEnded,
    EventType.checkin_recorded: CheckinRecorded,
    EventType.risk_signal: RiskSignal,
    EventType.absence_reported: AbsenceReported,
    EventType.child_located: ChildLocated,
    EventType.return_interview_completed: ReturnInterviewCompleted,
}

D = TypeVar("D", bound=BaseModel)


class Event(BaseModel):
    """The envelope of one intake event; `data` is validated into the model for `type`.

    The submitter is not a field: it comes from the credentials (see `IntakeRecord`), and
    `extra="forbid"` refuses a body that tries to claim one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    type: EventType
    schema_version: Literal[1] = 1
    occurred_at: PastTime
    child_id: ChildId
    # SerializeAsAny: dump the concrete data model's fields, not the (empty) BaseModel's.
    data: SerializeAsAny[BaseModel]

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_for_type(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        event_type = info.data.get("type")
        if event_type is None:
            # `type` itself was refused and says so; a second error here would only be noise.
            return value
        model = EVENT_DATA[event_type]
        if isinstance(value, model):
            return value
        if isinstance(value, BaseModel):
            raise PydanticCustomError(
                "data_type_mismatch",
                "data is a {given}, but type {type} needs a {needed}",
                {"given": type(value).__name__, "type": str(event_type), "needed": model.__name__},
            )
        # Its errors keep their own locations, so they surface as ("data", field, ...).
        return model.model_validate(value, context=info.context)

    @model_validator(mode="after")
    def _case_reference_of_its_authority(self, info: ValidationInfo) -> Event:
        # On submission only (with `now`), as the future-time rule: a record re-read must parse.
        if (info.context or {}).get("now") is None or not isinstance(self.data, ChildIdentified):
            return self
        prefix = f"{self.data.local_authority}-"
        # The digit rule again after the code: "E09000012-Amira" has its digits in the code.
        if not self.child_id.startswith(prefix) or not any(
            c.isdigit() for c in self.child_id[len(prefix) :]
        ):
            raise PydanticCustomError(
                "case_reference_authority",
                "child_id must begin with its local authority's code ({prefix}…) and carry a"
                " digit after it: a case reference belongs to one authority, and is never a name",
                {"prefix": prefix},
            )
        return self

    # builtins.type: inside this class, `type` is the event-type field.
    def data_as(self, model: builtins.type[D]) -> D:
        """`data` as the given model, for typed access; TypeError if the event is another type."""
        if not isinstance(self.data, model):
            raise TypeError(f"event {self.event_id} ({self.type}) carries no {model.__name__}")
        return self.data


def parse_event(raw: bytes | str | dict[str, Any], now: datetime) -> Event:
    """Validate a submitted event, refusing timestamps more than 5 minutes after `now`.

    Raises `pydantic.ValidationError`; each error's `loc` names the field, e.g.
    `("data", "last_seen_at")`.
    """
    if now.tzinfo is None:
        raise ValueError("parse_event needs a timezone-aware `now`")
    context = {"now": now}
    if isinstance(raw, dict):
        return Event.model_validate(raw, context=context)
    return Event.model_validate_json(raw, context=context)


class Submitter(BaseModel):
    """Who submitted an event, from the API key's owner, never from the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_code: OrgCode
    user_id: RecordId


class IntakeRecord(BaseModel):
    """The Kafka record the API publishes for each accepted event.

    Re-read later without `now` in context, so the future-time rule is not applied again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Event
    submitted_by: Submitter
    received_at: AwareDatetime
