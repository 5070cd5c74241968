"""The voice half of the local Twilio server: call resources and the TwiML a call plays."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urljoin

API = "/2010-04-01"
# How a scripted call ends; "completed" means someone answered and the TwiML was played.
CALL_OUTCOMES = ("completed", "no-answer", "busy", "failed", "canceled")
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# Call-resource fields a local fake never varies.
FIXED_CALL_FIELDS: dict[str, Any] = dict(
    api_version="2010-04-01", direction="outbound-api", price_unit="USD"
)
FIXED_CALL_FIELDS.update(
    dict.fromkeys(("answered_by", "caller_name", "forwarded_from", "group_sid", "price"))
)
FIXED_CALL_FIELDS.update(dict.fromkeys(("parent_call_sid", "phone_number_sid", "trunk_sid")))


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


@dataclass
class LocalCall:
    """One call the server accepted: what it fetched, said and heard."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    events: tuple[str, ...]
    received_at: float  # wall-clock time.time() when the POST arrived
    account_sid: str = ""
    status: str = "queued"
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    said: list[str] = field(default_factory=list)  # every <Say>, in the order it was played
    pressed: list[str] = field(default_factory=list)  # digits sent to a <Gather>'s action
    answers: list[str] = field(default_factory=list)  # each TwiML document the call fetched
    error: str | None = None  # why the call could not play its TwiML, if it could not

    def resource(self) -> dict[str, Any]:
        """The JSON call resource as Twilio's API returns it."""
        uri = f"{API}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        duration = None
        if self.start_time and self.end_time:
            duration = str(int((self.end_time - self.start_time).total_seconds()))
        return {
            **FIXED_CALL_FIELDS,
            "account_sid": self.account_sid,
            "date_created": _rfc2822(self.date_created),
            "date_updated": _rfc2822(self.date_updated),
            "duration": duration,
            "end_time": _rfc2822(self.end_time),
            "from": self.from_,
            "from_formatted": self.from_,
            "queue_time": "0",
            "sid": self.sid,
            "start_time": _rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
            "to": self.to,
            "to_formatted": self.to,
            "uri": uri,
        }

    def local_view(self) -> dict[str, Any]:
        """What `GET /_local/calls` shows of the call: the resource and what was played."""
        return {
            **self.resource(),
            "url": self.url,
            "status_callback": self.status_callback,
            "received_at": self.received_at,
            "said": self.said,
            "pressed": self.pressed,
            "answers": self.answers,
            "error": self.error,
        }


@dataclass(frozen=True)
class Gather:
    """A <Gather> waiting for keypad input: where the digits go, and what it says meanwhile."""

    action: str
    num_digits: int
    said: list[str]


@dataclass(frozen=True)
class Verb:
    """One top-level TwiML verb as the local server plays it."""

    kind: str  # "say" | "gather" | "hangup" | "redirect" | "pause" | other verbs, ignored
    text: str = ""  # the <Say> text, or the <Redirect> URL
    gather: Gather | None = None


def _say_text(element: ET.Element) -> list[str]:
    """A <Say>'s text, repeated as its loop attribute asks (loop="0" is capped at once)."""
    text = " ".join((element.text or "").split())
    return [text] * max(1, int(element.get("loop", "1") or 1))


def read_twiml(document: str, base_url: str) -> list[Verb]:
    """The verbs of a TwiML <Response>, relative action URLs resolved against base_url.

    Raises ValueError when the document is not a TwiML <Response>."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    verbs: list[Verb] = []
    for element in root:
        if element.tag == "Say":
            verbs.extend(Verb("say", text) for text in _say_text(element))
        elif element.tag == "Gather":
            said = [t for child in element if child.tag == "Say" for t in _say_text(child)]
            # Twilio posts to the current document's URL when a Gather names no action.
            action = urljoin(base_url, element.get("action") or base_url)
            digits = int(element.get("numDigits", "1") or 1)
            verbs.append(Verb("gather", gather=Gather(action, digits, said)))
        elif element.tag == "Redirect":
            verbs.append(Verb("redirect", urljoin(base_url, (element.text or "").strip())))
        else:
            verbs.append(Verb(element.tag.lower()))
    return verbs
