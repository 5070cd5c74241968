"""A shared alert as OASIS CAP 1.2 XML, and a list of them as an Atom 1.0 feed.

Pure functions of a `SharedAlert`: they read its allow-listed fields and nothing else, so no
name, nationality, immigration or NRM status or exploitation detail can reach a CAP consumer.
The XML is built with `xml.etree.ElementTree`, never by joining strings, and any character XML
1.0 cannot carry (control characters, lone surrogates) is dropped from the text first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID
from xml.etree import ElementTree as ET

from goldenhour.contracts.shared import SharedAlert

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"

RESTRICTION = "Shared with neighbouring authorities' safeguarding teams"
EVENT = "Missing child (presumed victim of trafficking)"
SEVERITY = {"high": "Severe", "medium": "Moderate", "low": "Minor"}
"""CAP `severity` by the child's risk level."""

PARAMETER_FIELDS = (
    "alert_reference",
    "case_reference",
    "age_estimate",
    "gender",
    "height_cm",
    "clothing",
    "languages",
    "last_seen_at",
    "risk_level",
    "issuing_authority",
    "duty_number",
)
"""The allow-listed fields carried as `info/parameter` pairs, each when it has a value.

The others are carried by CAP's own elements: shared_id and version in `identifier`, msg_type in
`msgType`, sent_at in `sent`, last_seen_location in `area/areaDesc`, issuing_authority_name in
`senderName`."""

# XML 1.0's Char production: anything else may not appear in a document at all.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    """A value as text XML 1.0 can carry."""
    return _NOT_XML_CHAR.sub("", str(value))


def cap_time(at: datetime) -> str:
    """An instant in CAP's form: UTC to the second, the zone as a numeric offset.

    CAP 1.2 (section 3.3.2) forbids "Z" and fractional seconds and writes UTC as "-00:00".
    """
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def _atom_time(at: datetime) -> str:
    """An instant as an RFC 3339 date-time for Atom, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _readable_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M UTC on %d %b %Y")


def cap_identifier(shared_id: UUID, version: int) -> str:
    """The CAP `identifier` of one version of a shared alert."""
    return f"goldenhour-{shared_id}-v{version}"


def cap_sender(issuing_authority: str) -> str:
    """A CAP `sender` for an issuing authority's code, e.g. `goldenhour@lbh.gov.uk`."""
    return f"goldenhour@{issuing_authority.lower()}.gov.uk"


def _root(tag: str, namespace: str) -> ET.Element:
    """A document element whose unqualified descendants are all in `namespace`.

    An `xmlns` attribute rather than ElementTree's `default_namespace`, which refuses the
    unqualified attributes (Atom's `rel`, `href`) that the default namespace does not cover.
    """
    return ET.Element(tag, {"xmlns": namespace})


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = _text(text)
    return element


def _parameter_value(shared: SharedAlert, name: str) -> str | None:
    """One allow-listed field as a parameter value; None when it has none."""
    value = getattr(shared, name)
    if value is None:
        return None
    if name == "languages":
        value = ", ".join(_text(v).strip() for v in value if _text(v).strip())
    elif name == "last_seen_at":
        value = cap_time(value)
    elif name == "risk_level":
        value = value.value
    text = _text(value).strip()
    return text or None


def parameters(shared: SharedAlert) -> list[tuple[str, str]]:
    """The (valueName, value) pairs of a shared alert's non-empty parameter fields."""
    pairs = ((name, _parameter_value(shared, name)) for name in PARAMETER_FIELDS)
    return [(name, value) for name, value in pairs if value is not None]


def _given(value: object | None) -> str | None:
    if value is None:
        return None
    text = _text(value).strip()
    return text or None


def _headline(shared: SharedAlert) -> str:
    headline = f"Missing child {shared.case_reference}"
    return headline + (": alert cancelled" if shared.msg_type == "Cancel" else "")


def _description(shared: SharedAlert) -> str:
    """A description from the allow-listed fields alone."""
    if shared.msg_type == "Cancel":
        return (
            f"The shared alert for case {shared.case_reference} from "
            f"{_text(shared.issuing_authority_name)} is cancelled: the child is no longer "
            "reported missing."
        )
    languages = _parameter_value(shared, "languages")
    clothing = _given(shared.clothing)
    maybe = [
        f"aged about {shared.age_estimate}" if shared.age_estimate is not None else None,
        _given(shared.gender),
        f"about {shared.height_cm} cm tall" if shared.height_cm is not None else None,
        f"wearing {clothing}" if clothing else None,
        f"speaks {languages}" if languages else None,
    ]
    looks = [part for part in maybe if part]
    place = _given(shared.last_seen_location) or "a place not given"
    sentences = [
        f"Missing child, case reference {shared.case_reference}, {shared.risk_level.value} risk.",
        ("Description: " + "; ".join(looks) + ".") if looks else None,
        f"Last seen at {_readable_time(shared.last_seen_at)} at {place}.",
        f"Issued by {_text(shared.issuing_authority_name)} ({shared.issuing_authority}).",
    ]
    return " ".join(s for s in sentences if s)


def _instruction(shared: SharedAlert) -> str:
    if shared.msg_type == "Cancel":
        return f"No further action is needed. Quote {shared.case_reference} with any question."
    duty = _given(shared.duty_number)
    call = f" Then tell the issuing authority's duty desk on {duty}." if duty else ""
    return (
        f"If seen, do not approach; call 999 and quote {shared.case_reference}"
        f" and alert reference {shared.alert_reference}.{call}"
    )


def cap_alert(
    shared: SharedAlert, sender: str, references: Iterable[tuple[str, datetime]] = ()
) -> bytes:
    """One version of a shared alert as a CAP 1.2 `alert` document (UTF-8).

    `references` are the (identifier, sent) of earlier versions it updates or cancels, written
    as CAP's space-separated `sender,identifier,sent` triples on an Update or a Cancel only.
    """
    alert = _root("alert", CAP_NS)
    _sub(alert, "identifier", cap_identifier(shared.shared_id, shared.version))
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(shared.sent_at))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", shared.msg_type)
    _sub(alert, "scope", "Restricted")
    _sub(alert, "restriction", RESTRICTION)
    refs = [f"{sender},{identifier},{cap_time(sent)}" for identifier, sent in references]
    if shared.msg_type != "Alert" and refs:
        _sub(alert, "references", " ".join(refs))

    info = _sub(alert, "info")
    _sub(info, "language", "en-GB")
    _sub(info, "category", "Rescue")
    _sub(info, "event", EVENT)
    _sub(info, "responseType", "AllClear" if shared.msg_type == "Cancel" else "Monitor")
    _sub(info, "urgency", "Immediate")
    _sub(info, "severity", SEVERITY[shared.risk_level.value])
    _sub(info, "certainty", "Observed")
    _sub(info, "senderName", shared.issuing_authority_name)
    _sub(info, "headline", _headline(shared))
    _sub(info, "description", _description(shared))
    _sub(info, "instruction", _instruction(shared))
    if _given(shared.duty_number):
        _sub(info, "contact", shared.duty_number)
    for name, value in parameters(shared):
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    area = _sub(info, "area")
    _sub(area, "areaDesc", _given(shared.last_seen_location) or "Not given")
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def _entry_title(shared: SharedAlert) -> str:
    return f"{shared.msg_type}: {_headline(shared)} ({_text(shared.issuing_authority_name)})"


def _entry_summary(shared: SharedAlert) -> str:
    """A minimised summary: case, risk, when and where last seen, who issued it."""
    if shared.msg_type == "Cancel":
        return f"Cancelled: case {shared.case_reference} is no longer reported missing."
    place = _given(shared.last_seen_location) or "a place not given"
    return (
        f"Case {shared.case_reference}, {shared.risk_level.value} risk, last seen "
        f"{_readable_time(shared.last_seen_at)} at {place}."
    )


def atom_feed(
    entries: Iterable[tuple[SharedAlert, str]], feed_url: str, updated: datetime
) -> bytes:
    """An Atom 1.0 feed of shared alerts, each entry linking to its CAP document's URL."""
    feed = _root("feed", ATOM_NS)
    _sub(feed, "id", feed_url)
    _sub(feed, "title", "Golden Hour shared alerts")
    _sub(feed, "updated", _atom_time(updated))
    author = _sub(feed, "author")
    _sub(author, "name", "Golden Hour")
    _sub(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=_text(feed_url))
    for shared, cap_url in entries:
        entry = _sub(feed, "entry")
        _sub(entry, "id", f"urn:uuid:{shared.shared_id}:v{shared.version}")
        _sub(entry, "title", _entry_title(shared))
        _sub(entry, "updated", _atom_time(shared.sent_at))
        _sub(entry, "summary", _entry_summary(shared), type="text")
        _sub(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=_text(cap_url))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
