"""Intake events: the envelope, each data model's rules, and the future-time rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from goldenhour.contracts.events import (
    EVENT_DATA,
    AbsenceReported,
    ChildId,
    ChildLocated,
    Event,
    EventType,
    ExploitationType,
    IntakeRecord,
    LocatedStatus,
    RiskLevel,
    RiskSignalKind,
    Submitter,
    parse_event,
)

NOW = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)

# One full, valid `data` per event type: every optional field filled, so a round trip covers all.
FULL_DATA: dict[EventType, dict[str, Any]] = {
    EventType.child_identified: {
        "risk_level": "high",
        "local_authority": "LBH",
        "exploitation_types": ["criminal", "labour"],
        "unaccompanied": True,
        "description": {
            "age_estimate": 15,
            "gender": "male",
            "height_cm": 165,
            "build": "slim",
            "clothing": "grey hoodie, black trainers",
            "distinguishing_features": "scar above left eyebrow",
            "languages": ["Vietnamese", "English"],
        },
        "nrm_referral": {"status": "referred", "referred_at": "2026-11-22T20:00:00Z"},
        "date_of_birth": "2011-03-01",
        "date_of_birth_estimated": True,
        "ssda903_id": "LBH0042",
    },
    EventType.placement_started: {
        "placement_id": "PL-0042",
        "care_home": "OAK",
        "risk": {"level": "high", "factors": ["trafficker knows the area"]},
        "checkin_interval_minutes": 60,
        "curfew": "21:30",
    },
    EventType.child_transferred: {"local_authority": "LBI", "reason": "moved out of borough"},
    EventType.placement_ended: {"placement_id": "PL-0042", "reason": "moved to foster care"},
    EventType.checkin_recorded: {"placement_id": "PL-0042", "seen_at": "2026-11-22T21:00:00Z"},
    EventType.risk_signal: {"kind": "new_phone", "detail": "second phone seen in room"},
    EventType.absence_reported: {
        "last_seen_at": "2026-11-22T21:00:00Z",
        "last_seen_location": "bus stop outside the home",
        "circumstances": "did not return from the shop",
        "clothing": "red coat",
        "placement_id": "PL-0042",
        "classification": "away",
    },
    EventType.child_located: {
        "located_at": "2026-11-22T21:30:00Z",
        "location": "Stratford station",
        "status": "found_safe",
    },
    EventType.return_interview_completed: {
        "completed_at": "2026-11-22T21:35:00Z",
        "by": "independent advocate",
    },
}


def envelope(event_type: EventType | str, data: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "type": str(event_type),
        "schema_version": 1,
        "occurred_at": "2026-11-22T21:40:00Z",
        "child_id": "LBH-2026-0042",
        "data": data,
    }
    body.update(over)
    return body


def absence(**data: Any) -> dict[str, Any]:
    return envelope(EventType.absence_reported, {"last_seen_at": "2026-11-22T21:00:00Z", **data})


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_every_event_type_has_a_data_model() -> None:
    assert set(EVENT_DATA) == set(EventType)
    assert len(EventType) == 9


@pytest.mark.parametrize("event_type", list(EventType))
def test_json_round_trip_of_every_event_type(event_type: EventType) -> None:
    raw = json.dumps(envelope(event_type, FULL_DATA[event_type]))
    event = parse_event(raw, NOW)
    assert isinstance(event.data, EVENT_DATA[event_type])
    dumped = event.model_dump(mode="json")
    # Every submitted data field survives, not just the envelope.
    assert dumped["data"] == FULL_DATA[event_type]
    assert Event.model_validate_json(event.model_dump_json()) == event
    assert parse_event(dumped, NOW) == event


def test_an_absence_is_missing_unless_said_away_and_a_birth_date_is_a_past_one() -> None:
    assert parse_event(absence(), NOW).data_as(AbsenceReported).classification == "missing"
    bad = {**FULL_DATA[EventType.child_identified], "date_of_birth": "2026-12-25"}
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(EventType.child_identified, bad), NOW)
    assert locs(exc) == [("data", "date_of_birth")]
    bad = {**FULL_DATA[EventType.child_identified], "ssda903_id": "LBH 0042; drop"}
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(EventType.child_identified, bad), NOW)
    assert locs(exc) == [("data", "ssda903_id")]


def test_minimal_events_need_only_the_bold_fields() -> None:
    event = parse_event(envelope(EventType.risk_signal, {"kind": "trafficker_contact"}), NOW)
    assert event.data_as(type(event.data)).kind == RiskSignalKind.trafficker_contact
    event = parse_event(absence(), NOW)
    data = event.data_as(AbsenceReported)
    assert data.last_seen_location is None and data.placement_id is None
    with pytest.raises(TypeError, match="ChildLocated"):
        event.data_as(ChildLocated)


@pytest.mark.parametrize(
    "child_id", ["LBH-2026-0042", "abc1", "1.2", "A_B-9", "x" * 63 + "1", "0" * 64, " LBH-7 "]
)
def test_child_id_accepted(child_id: str) -> None:
    event = parse_event(absence() | {"child_id": child_id}, NOW)
    assert event.child_id == child_id.strip()


@pytest.mark.parametrize(
    ("child_id", "why"),
    [
        ("Amina", "never a name"),  # a bare name: no digit
        ("Amina Begum", "pattern"),
        ("LBH 2026 0042", "pattern"),
        ("a" * 64 + "1", "pattern"),  # 65 chars
        ("1a", "pattern"),  # too short
        ("LBH/2026/0042", "pattern"),
        ("", "pattern"),
    ],
)
def test_child_id_refused(child_id: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as exc:
        parse_event(absence() | {"child_id": child_id}, NOW)
    assert locs(exc) == [("child_id",)]


@given(st.from_regex(r"\A[A-Za-z0-9._-]{0,31}[0-9][A-Za-z0-9._-]{2,32}\Z"))
def test_any_valid_child_id_round_trips(child_id: str) -> None:
    adapter = TypeAdapter(ChildId)
    assert adapter.validate_python(child_id) == child_id
    event = parse_event(absence() | {"child_id": child_id}, NOW)
    assert Event.model_validate_json(event.model_dump_json()).child_id == child_id


@pytest.mark.parametrize(
    ("field", "value"),
    [("risk_level", "critical"), ("local_authority", "lbh"), ("exploitation_types", ["organ"])],
)
def test_child_identified_enums_and_codes_refused(field: str, value: Any) -> None:
    data = FULL_DATA[EventType.child_identified] | {field: value}
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(EventType.child_identified, data), NOW)
    assert locs(exc)[0][:3] == ("data", field, *(() if field != "exploitation_types" else (0,)))


def test_enum_values_are_the_documented_ones() -> None:
    assert [r.value for r in RiskLevel] == ["high", "medium", "low"]
    assert {e.value for e in ExploitationType} == {
        "sexual", "labour", "domestic_servitude", "criminal", "cannabis_cultivation", "other"
    }  # fmt: skip
    assert {s.value for s in LocatedStatus} == {"returned", "found_safe", "found_harmed",
                                                "in_custody"}  # fmt: skip
    assert RiskLevel.high.rank > RiskLevel.medium.rank > RiskLevel.low.rank
    assert max([RiskLevel.low, RiskLevel.high, RiskLevel.medium], key=lambda r: r.rank) == "high"


def test_unknown_type_is_refused_naming_type() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope("absence.imagined", {"last_seen_at": "2026-11-22T21:00:00Z"}), NOW)
    assert locs(exc) == [("type",)]
    assert "absence.reported" in str(exc.value)


def test_data_is_validated_as_its_type() -> None:
    # A valid absence payload under another type is refused by that type's rules.
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(EventType.child_located, {"last_seen_at": "2026-11-22T21:00Z"}), NOW)
    assert set(locs(exc)) == {("data", "located_at"), ("data", "last_seen_at")}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (absence() | {"submitted_by": "LBH"}, ("submitted_by",)),
        (absence() | {"org_code": "LBH"}, ("org_code",)),
        (absence(child_name="Amina"), ("data", "child_name")),
        (absence(nationality="x"), ("data", "nationality")),
        (absence() | {"schema_version": 2}, ("schema_version",)),
    ],
)
def test_extra_fields_and_wrong_version_refused(body: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event(body, NOW)
    assert locs(exc) == [loc]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (absence() | {"occurred_at": "2026-11-22T21:40:00"}, ("occurred_at",)),
        (absence(last_seen_at="2026-11-22T21:00:00"), ("data", "last_seen_at")),
    ],
)
def test_naive_timestamps_refused(body: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError, match="timezone") as exc:
        parse_event(body, NOW)
    assert locs(exc) == [loc]


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (EventType.absence_reported, "last_seen_at"),
        (EventType.child_located, "located_at"),
        (EventType.checkin_recorded, "seen_at"),
        (EventType.return_interview_completed, "completed_at"),
    ],
)
@pytest.mark.parametrize(
    ("ahead", "ok"),
    [(timedelta(0), True), (timedelta(minutes=5), True), (timedelta(minutes=5, seconds=1), False)],
)
def test_future_timestamps(event_type: EventType, field: str, ahead: timedelta, ok: bool) -> None:
    data = FULL_DATA[event_type] | {field: (NOW + ahead).isoformat()}
    body = envelope(event_type, data)
    if ok:
        parse_event(json.dumps(body), NOW)
        return
    with pytest.raises(ValidationError, match="ahead of the server clock") as exc:
        parse_event(json.dumps(body), NOW)
    assert locs(exc) == [("data", field)]


def test_future_occurred_at_refused_and_context_is_needed() -> None:
    body = absence() | {"occurred_at": (NOW + timedelta(hours=1)).isoformat()}
    with pytest.raises(ValidationError) as exc:
        parse_event(body, NOW)
    assert locs(exc) == [("occurred_at",)]
    # Without `now` in context (a record re-read later) the same body parses.
    assert Event.model_validate(body).occurred_at == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_event(body, NOW.replace(tzinfo=None))


def test_nrm_referral_time_may_not_be_in_the_future() -> None:
    data = FULL_DATA[EventType.child_identified] | {
        "nrm_referral": {"status": "referred", "referred_at": "2026-11-23T00:00:00Z"}
    }
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(EventType.child_identified, data), NOW)
    assert locs(exc) == [("data", "nrm_referral", "referred_at")]


@pytest.mark.parametrize(
    ("event_type", "data", "loc"),
    [
        (EventType.absence_reported, {"circumstances": "x" * 501}, ("data", "circumstances")),
        (EventType.absence_reported, {"placement_id": "p" * 65}, ("data", "placement_id")),
        (EventType.absence_reported, {"placement_id": "PL 1"}, ("data", "placement_id")),
        (EventType.absence_reported, {"clothing": "   "}, ("data", "clothing")),
        (EventType.return_interview_completed, {"by": "b" * 121}, ("data", "by")),
        (EventType.placement_started, {"risk": {"level": "high", "factors": ["f"] * 21}},
         ("data", "risk", "factors")),
        (EventType.placement_started, {"checkin_interval_minutes": 0},
         ("data", "checkin_interval_minutes")),
        (EventType.placement_started, {"checkin_interval_minutes": 10081},
         ("data", "checkin_interval_minutes")),
        (EventType.placement_started, {"curfew": "24:00"}, ("data", "curfew")),
        (EventType.placement_started, {"curfew": "9:30"}, ("data", "curfew")),
        (EventType.placement_started, {"care_home": "oak"}, ("data", "care_home")),
        (EventType.child_identified,
         {"description": {"languages": ["l"] * 21}}, ("data", "description", "languages")),
        (EventType.child_identified,
         {"description": {"age_estimate": 26}}, ("data", "description", "age_estimate")),
        (EventType.child_identified,
         {"description": {"height_cm": 29}}, ("data", "description", "height_cm")),
        (EventType.child_identified,
         {"description": {"gender": "g" * 41}}, ("data", "description", "gender")),
        (EventType.child_identified,
         {"description": {"name": "Amina"}}, ("data", "description", "name")),
        (EventType.child_identified, {"exploitation_types": ["other"] * 21},
         ("data", "exploitation_types")),
        (EventType.child_located, {"status": "missing"}, ("data", "status")),
        (EventType.risk_signal, {"kind": "rumour"}, ("data", "kind")),
    ],
)  # fmt: skip
def test_field_rules(event_type: EventType, data: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event(envelope(event_type, FULL_DATA[event_type] | data), NOW)
    assert locs(exc)[0][: len(loc)] == loc


def test_strings_are_stripped_and_curfew_edges_accepted() -> None:
    data = FULL_DATA[EventType.placement_started] | {"curfew": "23:59", "placement_id": " P1 "}
    event = parse_event(envelope(EventType.placement_started, data), NOW)
    assert event.model_dump()["data"]["curfew"] == "23:59"
    assert event.model_dump()["data"]["placement_id"] == "P1"
    data["curfew"] = "00:00"
    parse_event(envelope(EventType.placement_started, data), NOW)


def test_event_built_in_code_takes_a_data_model() -> None:
    data = AbsenceReported(last_seen_at=NOW)
    event = Event(
        event_id=uuid.uuid4(),
        type=EventType.absence_reported,
        occurred_at=NOW,
        child_id="LBH-2026-0042",
        data=data,
    )
    assert event.data is data
    with pytest.raises(ValidationError, match="needs a ChildLocated"):
        Event(
            event_id=uuid.uuid4(),
            type=EventType.child_located,
            occurred_at=NOW,
            child_id="LBH-2026-0042",
            data=data,
        )


def test_intake_record_rereads_without_the_time_rule() -> None:
    event = parse_event(absence(), NOW)
    record = IntakeRecord(
        event=event,
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=NOW,
    )
    raw = record.model_dump_json().encode()
    # Re-read long before "now": a strict reader would refuse these instants as future ones.
    again = IntakeRecord.model_validate_json(raw)
    assert again == record
    assert isinstance(again.event.data, AbsenceReported)
    assert json.loads(raw)["event"]["data"]["last_seen_at"] == "2026-11-22T21:00:00Z"
    with pytest.raises(ValidationError) as exc:
        IntakeRecord.model_validate_json(raw.replace(b'"user_id"', b'"name":"x","user_id"'))
    assert ("submitted_by", "name") in locs(exc)


def test_a_case_reference_begins_with_its_authoritys_code() -> None:
    """Checked on submission: another authority's reference space is never anyone else's."""
    data = FULL_DATA[EventType.child_identified] | {"local_authority": "LBI"}
    body = envelope(EventType.child_identified, data, child_id="LBH-2026-0042")
    with pytest.raises(ValidationError, match="must begin with its local authority's code"):
        parse_event(body, NOW)
    parse_event(envelope(EventType.child_identified, data, child_id="LBI-2026-0042"), NOW)
    named = envelope(EventType.child_identified, data, child_id="LBI-Amira-Tesfaye")
    with pytest.raises(ValidationError, match="never a name"):
        parse_event(named, NOW)
    # A record re-read later (no `now`) still parses.
    assert Event.model_validate(body).child_id == "LBH-2026-0042"
