"""The voice half of the local Twilio server: call resources, the TwiML a call plays, and the
Calls REST handlers that ring, play and report each call."""

from __future__ import annotations

import asyncio
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp
import structlog
from aiohttp import web

from goldenhour.dev.twilio_rest import API, E164, RestBase, not_found, rfc2822, twilio_error
from goldenhour.dev.waiting import wait_for_matches

log = structlog.get_logger(__name__)

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
# A call that keeps redirecting or gathering is cut off after this many TwiML documents.
MAX_DOCUMENTS = 10


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
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "duration": duration,
            "end_time": rfc2822(self.end_time),
            "from": self.from_,
            "from_formatted": self.from_,
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
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


class CallsApi(RestBase):
    """LocalTwilio's Calls API: create, fetch and list, and the keypad and outcomes scripted."""

    calls: list[LocalCall]
    _calls_by_sid: dict[str, LocalCall]
    _presses: dict[str, str]
    _call_outcomes: dict[str, str]
    _calls_released: asyncio.Event

    def press(self, phone: str, digits: str | None) -> None:
        """Every later call to phone answers its keypad prompts with `digits`, one prompt's
        worth at a time (numDigits each); None or "" presses nothing."""
        if digits and not digits.replace("#", "").replace("*", "").isdigit():
            raise ValueError(f"keypad input {digits!r} is not digits")
        if digits:
            self._presses[phone] = digits
        else:
            self._presses.pop(phone, None)

    def set_call_outcome(self, phone: str, outcome: str) -> None:
        """Calls to phone end `outcome`: completed (answered), no-answer, busy, failed, canceled."""
        if outcome not in CALL_OUTCOMES:
            raise ValueError(
                f"unsupported call outcome {outcome!r}; expected one of {CALL_OUTCOMES}"
            )
        self._call_outcomes[phone] = outcome

    def calls_to(self, phone: str) -> list[LocalCall]:
        """All calls accepted for phone, oldest first."""
        return [c for c in self.calls if c.to == phone]

    async def wait_for_call(
        self,
        predicate: Callable[[LocalCall], bool],
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[LocalCall]:
        """Poll until at least count calls match predicate; raise TimeoutError otherwise."""
        return await wait_for_matches(lambda: self.calls, predicate, timeout, count, "call")

    async def _call_create(self, request: web.Request) -> web.StreamResponse:
        if (down := self._injected_outage("call_create")) is not None:
            return down
        form = await request.post()
        to, from_, url = (str(form.get(k, "")) for k in ("To", "From", "Url"))
        for failed, code, text in (
            (not to, 21201, "No 'To' number is specified"),
            (not E164.match(to), 21211, f"The 'To' number {to} is not a valid phone number."),
            (not from_, 21213, "No 'From' number is specified"),
            (not url.startswith(("http://", "https://")), 21205, f"Url is not a valid URL: {url}"),
        ):
            if failed:
                return twilio_error(400, code, text)
        events = tuple(
            e for value in form.getall("StatusCallbackEvent", []) for e in str(value).split()
        )
        bad = sorted(set(events) - set(CALL_EVENTS))
        if bad:
            return twilio_error(400, 21626, f"Invalid StatusCallbackEvent {bad}")
        callback = str(form.get("StatusCallback", "")) or None
        sid = "CA" + secrets.token_hex(16)
        # Twilio reports only the final event unless asked for more.
        call = LocalCall(
            sid, to, from_, url, callback, events or ("completed",), time.time(), self.account_sid
        )
        self.calls.append(call)
        self._calls_by_sid[sid] = call
        self._spawn(self._ring(call))
        return web.json_response(call.resource(), status=201)

    async def _call_fetch(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("call_fetch")) is not None:
            return down
        call = self._calls_by_sid.get(request.match_info["sid"])
        if call is not None:
            return web.json_response(call.resource())
        return not_found(request)

    async def _call_list(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("call_list")) is not None:
            return down
        q = request.query
        try:
            on, before, after = (
                date.fromisoformat(q[k][:10]) if q.get(k) else None
                for k in ("StartTime", "StartTime<", "StartTime>")
            )
        except ValueError:
            return twilio_error(400, 20001, "Invalid query parameter")

        def matches(call: LocalCall) -> bool:
            day = (call.start_time or call.date_created).date()
            return (
                self._listed(call.received_at)
                and (not q.get("To") or call.to == q["To"])
                and (not q.get("From") or call.from_ == q["From"])
                and (not q.get("Status") or call.status == q["Status"])
                and (on is None or day == on)
                and (before is None or day <= before)
                and (after is None or day >= after)
            )

        return self._page("Calls", self.calls, matches, q)

    async def _ring(self, call: LocalCall) -> None:
        """Play the call out: ring, answer (or not, as scripted), run its TwiML, hang up."""
        outcome = self._call_outcomes.get(call.to, "completed")
        await self._calls_released.wait()
        await self._call_moved(call, "initiated", "queued")
        if outcome != "failed":  # a failed call never rang
            await asyncio.sleep(self.callback_delay)
            await self._call_moved(call, "ringing", "ringing")
        if outcome == "completed":
            await asyncio.sleep(self.callback_delay)
            call.start_time = datetime.now(UTC)
            await self._call_moved(call, "answered", "in-progress")
            try:
                await self._play(call)
            except Exception as exc:  # Twilio hangs up on any application error
                call.error = repr(exc)[:300]
                log.warning("twilio_local.call_error", sid=call.sid, error=call.error)
            call.end_time = datetime.now(UTC)
        await asyncio.sleep(self.callback_delay)
        await self._call_moved(call, "completed", outcome)

    async def _play(self, call: LocalCall) -> None:
        """Fetch the call's TwiML and follow it: Say, Gather (with the scripted digits),
        Redirect, Hangup, as Twilio would."""
        session = self._callback_session()
        digits = self._presses.get(call.to, "")
        url, extra = call.url, {}
        for _ in range(MAX_DOCUMENTS):
            status, document = await self._post_signed(session, url, self._call_form(call, **extra))
            call.answers.append(document)
            if status != 200:
                raise RuntimeError(f"{url} answered HTTP {status}")
            next_url = None
            for verb in read_twiml(document, url):
                if verb.kind == "say":
                    call.said.append(verb.text)
                elif verb.kind == "gather" and verb.gather is not None:
                    call.said.extend(verb.gather.said)
                    if digits:
                        pressed, digits = (
                            digits[: verb.gather.num_digits],
                            digits[verb.gather.num_digits :],
                        )
                        call.pressed.append(pressed)
                        next_url, extra = verb.gather.action, {"Digits": pressed}
                        break
                elif verb.kind == "redirect":
                    next_url, extra = verb.text, {}
                    break
                elif verb.kind == "hangup":
                    return
            if next_url is None:
                return  # the document ran out: Twilio hangs up
            url = next_url
        raise RuntimeError(f"more than {MAX_DOCUMENTS} TwiML documents in one call")

    def _call_form(self, call: LocalCall, **extra: str) -> dict[str, str]:
        """The fields Twilio puts in every webhook POST about a call."""
        return {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": call.status,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    async def _call_moved(self, call: LocalCall, event: str, status: str) -> None:
        """Move the call to `status` and POST the signed callback if `event` was asked for."""
        call.status, call.date_updated = status, datetime.now(UTC)
        url = call.status_callback
        if not (self._callbacks_enabled and url and event in call.events):
            return
        params = self._call_form(call, CallbackSource="call-progress-events")
        params["SequenceNumber"] = str(CALL_EVENTS.index(event))
        params["Timestamp"] = rfc2822(call.date_updated) or ""
        if event == "completed":
            duration = call.resource()["duration"] or "0"
            params.update(CallDuration=duration, Duration=duration)
        try:
            await self._post_signed(self._callback_session(), url, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("twilio_local.callback_failed", sid=call.sid, error=repr(exc))
