"""A shared alert as CAP 1.2 and as an Atom feed: valid against the OASIS CAP 1.2 schema shipped
in tests/data/cap, CAP's own time format, and nothing beyond the shared alert's allow-list."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from goldenhour.contracts.shared import SHARED_FIELDS, SharedAlert
from goldenhour.services.cap import (
    PARAMETER_FIELDS,
    atom_feed,
    cap_alert,
    cap_identifier,
    cap_sender,
    cap_time,
    parameters,
)

XSD = Path(__file__).parents[2] / "data" / "cap" / "CAP-v1.2.xsd"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
CAP_TIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
SENDER = cap_sender("LBH")
SENT = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=timezone(timedelta(hours=1)))
"""An instant with microseconds and a non-UTC offset: 08:26:53 UTC."""
SCHEMA = etree.XMLSchema(file=str(XSD))
"""The OASIS CAP 1.2 schema (Copyright OASIS Open 2010), as published."""

INTENTIONALLY_NOT_PARAMETERS = {
    "shared_id",  # in `identifier`
    "version",  # in `identifier`
    "msg_type",  # `msgType`
    "sent_at",  # `sent`
    "last_seen_location",  # `area/areaDesc`
    "issuing_authority_name",  # `senderName`
}


def shared_alert(**overrides) -> SharedAlert:
    fields = {
        "shared_id": uuid.UUID("0b7e1f4c-5d3a-4c2e-9a61-2f0d8c1e7b55"),
        "alert_reference": uuid.UUID("5e0c9a3b-1f2d-4e6a-8b7c-9d0e1f2a3b4c"),
        "msg_type": "Alert",
        "version": 1,
        "sent_at": SENT,
        "case_reference": "LBH-2026-0042",
        "age_estimate": 15,
        "gender": "female",
        "height_cm": 158,
        "clothing": "black puffer jacket, grey joggers",
        "languages": ["Tigrinya", "Arabic"],
        "last_seen_at": SENT - timedelta(hours=2),
        "last_seen_location": "Mare Street bus stop, Hackney",
        "risk_level": "high",
        "issuing_authority": "LBH",
        "issuing_authority_name": "Hackney Children's Services",
        "duty_number": "+447700900001",
    }
    return SharedAlert(**{**fields, **overrides})


def versions(shared: SharedAlert) -> list[tuple[str, datetime]]:
    """The earlier versions an update or a cancellation refers to (version 1 here)."""
    if shared.version == 1:
        return []
    return [(cap_identifier(shared.shared_id, 1), SENT - timedelta(minutes=30))]


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def one(root: etree._Element, path: str) -> str:
    [found] = root.findall(path, NS)
    return found.text


def params(root: etree._Element) -> dict[str, str]:
    return {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in root.findall("cap:info/cap:parameter", NS)
    }


@pytest.mark.parametrize("msg_type, version", [("Alert", 1), ("Update", 2), ("Cancel", 3)])
@pytest.mark.parametrize(
    "risk, severity", [("high", "Severe"), ("medium", "Moderate"), ("low", "Minor")]
)
def test_every_message_type_and_risk_is_valid_cap(msg_type, version, risk, severity):
    shared = shared_alert(msg_type=msg_type, version=version, risk_level=risk)
    root = parse(cap_alert(shared, SENDER, versions(shared)))
    SCHEMA.assertValid(root)
    assert root.tag == "{urn:oasis:names:tc:emergency:cap:1.2}alert"
    assert one(root, "cap:identifier") == f"goldenhour-{shared.shared_id}-v{version}"
    assert one(root, "cap:sender") == "goldenhour@lbh.gov.uk"
    assert one(root, "cap:status") == "Actual"
    assert one(root, "cap:msgType") == msg_type
    assert one(root, "cap:scope") == "Restricted"
    assert one(root, "cap:restriction") == (
        "Shared with neighbouring authorities' safeguarding teams"
    )
    assert one(root, "cap:info/cap:language") == "en-GB"
    assert one(root, "cap:info/cap:category") == "Rescue"
    assert one(root, "cap:info/cap:event") == "Missing child (presumed victim of trafficking)"
    assert one(root, "cap:info/cap:urgency") == "Immediate"
    assert one(root, "cap:info/cap:severity") == severity
    assert one(root, "cap:info/cap:certainty") == "Observed"
    assert one(root, "cap:info/cap:senderName") == "Hackney Children's Services"
    assert one(root, "cap:info/cap:headline").startswith("Missing child LBH-2026-0042")
    assert one(root, "cap:info/cap:contact") == "+447700900001"
    assert one(root, "cap:info/cap:area/cap:areaDesc") == "Mare Street bus stop, Hackney"
    assert params(root)["risk_level"] == risk


def test_sent_is_utc_to_the_second_in_caps_own_form():
    root = parse(cap_alert(shared_alert(), SENDER, []))
    sent = one(root, "cap:sent")
    assert CAP_TIME.match(sent)
    # 09:26:53.589793+01:00 is 08:26:53 UTC; CAP writes UTC as -00:00, never Z, no fraction.
    assert sent == "2026-03-14T08:26:53-00:00"
    assert cap_time(datetime(2026, 7, 1, 23, 30, tzinfo=UTC)) == "2026-07-01T23:30:00-00:00"
    assert params(root)["last_seen_at"] == "2026-03-14T06:26:53-00:00"


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_an_update_or_a_cancellation_refers_to_the_earlier_version(msg_type):
    shared = shared_alert(msg_type=msg_type, version=2)
    root = parse(cap_alert(shared, SENDER, versions(shared)))
    SCHEMA.assertValid(root)
    assert one(root, "cap:references") == (
        f"goldenhour@lbh.gov.uk,goldenhour-{shared.shared_id}-v1,2026-03-14T07:56:53-00:00"
    )


def test_several_references_are_space_separated():
    shared = shared_alert(msg_type="Cancel", version=3)
    refs = [(cap_identifier(shared.shared_id, v), SENT) for v in (1, 2)]
    triples = one(parse(cap_alert(shared, SENDER, refs)), "cap:references").split(" ")
    assert [t.split(",")[1] for t in triples] == [
        f"goldenhour-{shared.shared_id}-v1",
        f"goldenhour-{shared.shared_id}-v2",
    ]


def test_a_first_alert_refers_to_nothing():
    root = parse(cap_alert(shared_alert(), SENDER, [("goldenhour-x-v0", SENT)]))
    assert root.findall("cap:references", NS) == []


def test_a_cancellation_stands_down():
    root = parse(cap_alert(shared_alert(msg_type="Cancel", version=2), SENDER, []))
    SCHEMA.assertValid(root)
    assert one(root, "cap:info/cap:responseType") == "AllClear"
    assert "cancelled" in one(root, "cap:info/cap:headline")
    assert "999" not in one(root, "cap:info/cap:instruction")


def test_the_instruction_says_call_999_and_quote_the_case_reference():
    root = parse(cap_alert(shared_alert(), SENDER, []))
    instruction = one(root, "cap:info/cap:instruction")
    assert instruction.startswith("If seen, do not approach; call 999 and quote LBH-2026-0042")
    assert "+447700900001" in instruction


def test_every_parameter_is_an_allow_listed_field_with_its_value():
    shared = shared_alert()
    got = params(parse(cap_alert(shared, SENDER, [])))
    assert set(got) <= SHARED_FIELDS
    assert set(got) == set(PARAMETER_FIELDS) == SHARED_FIELDS - INTENTIONALLY_NOT_PARAMETERS
    assert got == {
        "alert_reference": str(shared.alert_reference),
        "case_reference": "LBH-2026-0042",
        "age_estimate": "15",
        "gender": "female",
        "height_cm": "158",
        "clothing": "black puffer jacket, grey joggers",
        "languages": "Tigrinya, Arabic",
        "last_seen_at": "2026-03-14T06:26:53-00:00",
        "risk_level": "high",
        "issuing_authority": "LBH",
        "duty_number": "+447700900001",
    }


def test_empty_fields_are_left_out():
    shared = shared_alert(
        age_estimate=None,
        gender="",
        height_cm=None,
        clothing=None,
        languages=[],
        last_seen_location=None,
        duty_number=None,
    )
    root = parse(cap_alert(shared, SENDER, []))
    SCHEMA.assertValid(root)
    assert set(params(root)) == {
        "alert_reference",
        "case_reference",
        "last_seen_at",
        "risk_level",
        "issuing_authority",
    }
    assert one(root, "cap:info/cap:area/cap:areaDesc") == "Not given"
    assert root.findall("cap:info/cap:contact", NS) == []


def test_characters_xml_cannot_carry_are_dropped():
    shared = shared_alert(clothing="red\x00 coat\x1b", gender="<b>&amp;</b>")
    root = parse(cap_alert(shared, SENDER, []))
    SCHEMA.assertValid(root)
    assert params(root)["clothing"] == "red coat"
    assert params(root)["gender"] == "<b>&amp;</b>"  # escaped, not markup


def test_a_stored_shared_alert_with_distinguishing_features_reads_without_them():
    """Shared alerts once carried the free-text features; one stored then is shared no more."""
    stored = shared_alert().model_dump(mode="json")
    stored["distinguishing_features"] = "Amira Tesfaye, Eritrean, NRM referral pending"
    shared = SharedAlert.model_validate(stored)
    assert "distinguishing_features" not in shared.model_dump()
    xml = cap_alert(shared, SENDER, [])
    for word in (b"Amira", b"Eritrean", b"NRM", b"distinguishing"):
        assert word not in xml


def test_the_schema_bites():
    """The shipped schema refuses what CAP refuses, so the tests above mean something."""
    good = cap_alert(shared_alert(), SENDER, [])
    assert SCHEMA.validate(parse(good))
    for bad in (
        good.replace(b"<severity>Severe</severity>", b"<severity>High</severity>"),
        good.replace(b"-00:00</sent>", b"Z</sent>"),
        good.replace(b"<category>Rescue</category>", b""),
    ):
        assert not SCHEMA.validate(parse(bad))


def test_the_atom_feed_parses_and_links_each_entry_to_its_cap():
    base = "https://goldenhour.example/api/v1/shared-alerts"
    alerts = [
        shared_alert(),
        shared_alert(shared_id=uuid.uuid4(), msg_type="Update", version=2, risk_level="low"),
    ]
    entries = [(s, f"{base}/{s.shared_id}.cap") for s in alerts]
    root = parse(atom_feed(entries, f"{base}.atom", SENT))
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert one(root, "atom:id") == f"{base}.atom"
    assert one(root, "atom:updated") == "2026-03-14T08:26:53Z"
    assert root.find("atom:link[@rel='self']", NS).get("href") == f"{base}.atom"
    assert one(root, "atom:author/atom:name")
    found = root.findall("atom:entry", NS)
    assert len(found) == 2
    for entry, shared in zip(found, alerts, strict=True):
        assert one(entry, "atom:id") == f"urn:uuid:{shared.shared_id}:v{shared.version}"
        assert shared.case_reference in one(entry, "atom:title")
        assert one(entry, "atom:updated") == "2026-03-14T08:26:53Z"
        [link] = entry.findall("atom:link", NS)
        assert link.get("rel") == "alternate"
        assert link.get("type") == "application/cap+xml"
        assert link.get("href") == f"{base}/{shared.shared_id}.cap"
        summary = one(entry, "atom:summary")
        assert shared.case_reference in summary
        # Minimised: the description of the child stays in the CAP document.
        for detail in (shared.clothing, shared.gender):
            assert detail not in summary


def test_an_empty_feed_is_still_a_feed():
    root = parse(atom_feed([], "https://goldenhour.example/feed.atom", SENT))
    assert root.findall("atom:entry", NS) == []


# --- Any allow-listed content makes valid CAP. -------------------------------------------------

texts = st.text(max_size=80)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14))
    ),
)
shared_alerts = st.builds(
    SharedAlert,
    shared_id=st.uuids(),
    alert_reference=st.uuids(),
    msg_type=st.sampled_from(["Alert", "Update", "Cancel"]),
    version=st.integers(min_value=1, max_value=10_000),
    sent_at=instants,
    case_reference=st.from_regex(r"[A-Za-z0-9._-]{1,30}[0-9][A-Za-z0-9._-]{1,30}", fullmatch=True),
    age_estimate=st.none() | st.integers(min_value=0, max_value=25),
    gender=st.none() | texts,
    height_cm=st.none() | st.integers(min_value=0, max_value=250),
    clothing=st.none() | texts,
    languages=st.lists(texts, max_size=5),
    last_seen_at=instants,
    last_seen_location=st.none() | texts,
    risk_level=st.sampled_from(["high", "medium", "low"]),
    issuing_authority=st.from_regex(r"[A-Z0-9_-]{2,16}", fullmatch=True),
    issuing_authority_name=texts,
    duty_number=st.none() | texts,
)


@settings(max_examples=200, deadline=None)
@given(shared=shared_alerts)
def test_any_allow_listed_content_is_schema_valid_cap(shared):
    root = parse(cap_alert(shared, cap_sender(shared.issuing_authority), versions(shared)))
    assert SCHEMA.validate(root), SCHEMA.error_log
    assert set(params(root)) <= SHARED_FIELDS - INTENTIONALLY_NOT_PARAMETERS
    assert CAP_TIME.match(one(root, "cap:sent"))
    assert [name for name, _ in parameters(shared)] == list(params(root))
    feed = parse(atom_feed([(shared, "https://goldenhour.example/x.cap")], "urn:feed", SENT))
    assert len(feed.findall("atom:entry", NS)) == 1
