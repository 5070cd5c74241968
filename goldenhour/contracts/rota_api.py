"""Bodies of the rota routes: who is on call, the shifts of a range, and the changes a duty
manager makes (an override, a swap proposed and taken, a temporary schedule)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from goldenhour.contracts.fields import RecordId, ShortText

# The longest range a change, or a page of shifts, may span: a year of cover is a new rota.
LONGEST = timedelta(days=366)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def _written_as_iso(value: object) -> object:
    """Only an ISO 8601 text: pydantic would read a bare number as seconds since 1970."""
    if not isinstance(value, datetime) and not (isinstance(value, str) and _ISO_DATE.match(value)):
        raise PydanticCustomError(
            "instant", "an ISO 8601 instant with an offset, such as 2026-12-25T17:00:00Z"
        )
    return value


# Cover is planned within a lifetime of now; the ends of `datetime` overflow any sum with them.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise PydanticCustomError(
            "instant_range",
            "an instant from the year 2000 to 2199 (this is {value})",
            {"value": value.isoformat()},
        )
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_written_as_iso), AfterValidator(_in_range)]
"""An instant as the rota routes take it, in the body or the query."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise PydanticCustomError(
            "range_order",
            "end must be after start ({start} is not before {end})",
            {"start": start.isoformat(), "end": end.isoformat()},
        )
    if end - start > LONGEST:
        raise PydanticCustomError("range_length", "a change spans at most 366 days")


class OverrideRequest(_Body):
    """POST /rotas/{id}/overrides: `member` added, removed, or replaced by `by`, over
    `[start, end)`."""

    action: Literal["add", "remove", "replace"]
    member: RecordId
    by: RecordId | None = None
    start: Instant
    end: Instant
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _shape(self) -> OverrideRequest:
        _range(self.start, self.end)
        if (self.action == "replace") != (self.by is not None):
            raise PydanticCustomError(
                "override_by", "by names who replaces member, for a replace and only then"
            )
        if self.by == self.member:
            raise PydanticCustomError("override_by", "by is member: name someone else")
        return self


class SwapRequest(_Body):
    """POST /rotas/{id}/swaps: `member` asks for cover for their shift that starts at
    `shift_start`; `by`, if named, takes it at once."""

    member: RecordId
    shift_start: Instant
    by: RecordId | None = None
    reason: ShortText | None = None


class SwapTake(_Body):
    """POST /rotas/{id}/swaps/{change_id}/take: who takes the shift."""

    by: RecordId


class TemporaryShift(_Body):
    start: Instant
    end: Instant
    member: RecordId

    @model_validator(mode="after")
    def _order(self) -> TemporaryShift:
        _range(self.start, self.end)
        return self


class TemporaryRequest(_Body):
    """POST /rotas/{id}/temporary: a schedule that replaces the pattern and every override over
    `[start, end)`; where none of its shifts covers an instant, the rota's fallback is on."""

    start: Instant
    end: Instant
    shifts: list[TemporaryShift] = Field(min_length=1, max_length=400)
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _inside(self) -> TemporaryRequest:
        _range(self.start, self.end)
        for i, shift in enumerate(self.shifts):
            if shift.start < self.start or shift.end > self.end:
                raise PydanticCustomError(
                    "temporary_shift", "shifts[{i}] lies outside the schedule's range", {"i": i}
                )
        return self


class ChangeView(BaseModel):
    """One change to a rota, as stored."""

    change_id: UUID
    rota_id: str
    kind: Literal["override", "swap", "temporary"]
    action: str | None
    member: str | None
    by: str | None
    start: datetime
    end: datetime
    status: Literal["proposed", "active", "withdrawn"]
    reason: str | None
    created_by: str
    created_at: datetime
    taken_by: str | None = None


class PersonView(BaseModel):
    contact_id: str
    name: str | None = None


class OnCallView(BaseModel):
    """Who of a rota is on at `at`: `members`; `fallback` when nobody is and the rota's
    fallback is paged; `covered` False when the rota says nothing of the instant (every
    contact of the role is paged)."""

    rota_id: str
    org_code: str
    role: str
    at: datetime
    members: list[str]
    covered: bool
    fallback: bool
    source: Literal["pattern", "override", "temporary", "uncovered"]


class ShiftView(BaseModel):
    """A stretch of `[start, end)` with the same people on: by the pattern, changed by what
    is marked."""

    start: datetime
    end: datetime
    members: list[str]
    pattern_member: str | None
    changed: bool
    gap: bool
    bank_holiday: bool
    change_ids: list[UUID]


class RotaView(BaseModel):
    """A rota of the caller's organisation and who is on now."""

    rota_id: str
    org_code: str
    role: str
    members: list[str]
    fallback: str
    advance: str
    on_call: OnCallView
