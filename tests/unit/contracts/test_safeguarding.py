"""The firewall and data-minimisation rules, checked over the event models themselves.

Config models are out of scope: an organisation or a user may well have a `name`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from goldenhour.contracts.shared import SHARED_FIELDS, SharedAlert
from tests.unit.contracts.models import EVENT_MODELS, walk

FORBIDDEN = ("immigration", "nationality", "visa", "asylum", "name")


def offending_fields(model: type[BaseModel]) -> list[str]:
    """Fields (or aliases) whose name could carry identity or immigration data."""
    return [
        f"{model.__qualname__}.{name}"
        for name, field in model.model_fields.items()
        for word in FORBIDDEN
        if word in name.lower() or word in (field.alias or "").lower()
    ]


def test_the_walk_reaches_nested_models() -> None:
    nested = {"ChildDescription", "NrmReferral", "PlacementRisk", "Submitter"}
    assert nested | {"Event", "IntakeRecord", "AlertAcknowledged"} <= set(EVENT_MODELS)


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_no_event_model_carries_a_name_nationality_or_immigration_field(name: str) -> None:
    assert offending_fields(EVENT_MODELS[name]) == []


def test_the_check_would_catch_a_nested_one() -> None:
    class Sneaky(BaseModel):
        child_first_name: str
        visa_status: str | None = None

    class Wrapper(BaseModel):
        items: list[Sneaky | None]

    found = walk([Wrapper])
    assert [f for model in found.values() for f in offending_fields(model)] == [
        f"{Sneaky.__qualname__}.child_first_name",
        f"{Sneaky.__qualname__}.visa_status",
    ]


SHARED_ALLOW_LIST = {
    "shared_id",
    "alert_reference",
    "msg_type",
    "version",
    "sent_at",
    "case_reference",
    "age_estimate",
    "gender",
    "height_cm",
    "clothing",
    "languages",
    "last_seen_at",
    "last_seen_location",
    "risk_level",
    "issuing_authority",
    "issuing_authority_name",
    "duty_number",
}
"""What a neighbouring authority may receive: the structured description, clothing and where
last seen; never the free-text distinguishing features, which may hold a name or nationality."""


def test_a_shared_alert_holds_the_allow_list_and_nothing_else() -> None:
    assert SHARED_FIELDS == SHARED_ALLOW_LIST
    # The one `name` there is the issuing authority's, from the directory.
    assert [
        f for f in offending_fields(SharedAlert) if not f.endswith("issuing_authority_name")
    ] == []


def test_a_shared_alert_refuses_distinguishing_features_and_other_fields() -> None:
    fields = {
        "shared_id": uuid.uuid4(),
        "alert_reference": uuid.uuid4(),
        "msg_type": "Alert",
        "version": 1,
        "sent_at": datetime.now(UTC),
        "case_reference": "LBH-2026-0042",
        "last_seen_at": datetime.now(UTC),
        "risk_level": "high",
        "issuing_authority": "LBH",
        "issuing_authority_name": "Hackney",
    }
    with pytest.raises(ValidationError):
        SharedAlert(**fields, nationality="Eritrean")
    # One stored before the field was retired reads, without it.
    stored = SharedAlert.model_validate({**fields, "distinguishing_features": "Eritrean"})
    assert "Eritrean" not in stored.model_dump_json()
