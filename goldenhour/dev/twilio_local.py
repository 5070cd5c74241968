"""A local Twilio-compatible Messages and Calls API so the real twilio library runs without the
cloud: calls fetch and play their TwiML, take scripted keypad input and report their progress."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

from goldenhour.dev.twilio_calls import CALL_EVENTS, CALL_OUTCOMES, LocalCall, read_twiml
from goldenhour.dev.waiting import wait_for_matches

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's error codes for a message that never reached the handset.
FINAL_ERROR_CODES = {"undelivered": 30003, "failed": 30008}
# Message-resource fields a local fake never varies (no pricing, no messaging services).
FIXED_FIELDS = dict(
    api_version="2010-04-01", direction="outbound-api", num_media="0", price_unit="USD"
)
FIXED_FIELDS.update(dict.fromkeys(("error_message", "messaging_service_sid", "price")))
DATE_FIELDS = ("created", "sent", "updated")
# The REST operations an outage can take down.
OPS = ("create", "list", "fetch", "call_create", "call_list", "call_fetch")
# A call that keeps redirecting or gathering is cut off after this many TwiML documents.
MAX_DOCUMENTS = 10


def _rfc2822(moment: datetime | None) -> str | None:
    """Twilio dates are RFC 2822 in GMT."""
    return format_datetime(moment) if moment else None


@dataclass
class SentSms:
    """One message the server accepted, with its live delivery status."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    status: str
    received_at: float  # wall-clock time.time() when the POST arrived
    account_sid: str = ""
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_sent: datetime | None = None
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        """The JSON message resource exactly as Twilio's API returns it."""
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        dates = {f"date_{k}": _rfc2822(getattr(self, f"date_{k}")) for k in DATE_FIELDS}
        return {
            **FIXED_FIELDS,
            **dates,
            "account_sid": self.account_sid,
            "body": self.body,
            "error_code": self.error_code,
            "from": self.from_,
            "num_segments": str(max(1, -(-len(self.body) // 153))),  # 153 chars per part
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Twilio's legacy (not RFC 9457) error JSON, so the library raises TwilioRestException."""
    info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": info, "status": status}
    return web.json_response(body, status=status, headers=headers)


class LocalTwilio:
    """In-process Twilio Messages API with status callbacks and failure injection."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        callback_delay: float = 0.02,
    ) -> None:
        if not auth_token:
            # A signature under an empty key is one anybody can make.
            raise ValueError("LocalTwilio needs a non-empty auth_token")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.callback_delay = callback_delay
        self.messages: list[SentSms] = []
        self._by_sid: dict[str, SentSms] = {}
        # A busy number (a control room) has thousands: a list by `To` must not scan them all.
        self._by_to: dict[str, list[SentSms]] = {}
        self._validator = RequestValidator(auth_token)
        self._failures: deque[tuple[int, float | None]] = deque()
        self._drops: deque[bool] = deque()
        self._callbacks_enabled = True
        self._final_status: dict[str, str] = {}
        self._create_delay = 0.0
        self._list_lag = 0.0
        # op -> (time.monotonic() the outage ends, status, Retry-After)
        self._outages: dict[str, tuple[float, int, float | None]] = {}
        self.calls: list[LocalCall] = []
        self._calls_by_sid: dict[str, LocalCall] = {}
        self._presses: dict[str, str] = {}
        self._call_outcomes: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """Where to point twilio's api domain, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the HTTP server; port 0 picks a free port."""
        app = web.Application(middlewares=[self._auth])
        msgs = f"{API}/Accounts/{{account}}/Messages"
        app.router.add_post(f"{msgs}.json", self._create)
        app.router.add_get(f"{msgs}.json", self._list)
        app.router.add_get(f"{msgs}/{{sid}}.json", self._fetch)
        calls = f"{API}/Accounts/{{account}}/Calls"
        app.router.add_post(f"{calls}.json", self._call_create)
        app.router.add_get(f"{calls}.json", self._call_list)
        app.router.add_get(f"{calls}/{{sid}}.json", self._call_fetch)
        app.router.add_get("/_local/messages", self._ctl_messages)
        app.router.add_get("/_local/calls", self._ctl_calls)
        app.router.add_post("/_local/fail_next", self._ctl_fail_next)
        app.router.add_post("/_local/outage", self._ctl_outage)
        app.router.add_post("/_local/create_delay", self._ctl_create_delay)
        app.router.add_post("/_local/list_lag", self._ctl_list_lag)
        app.router.add_post("/_local/press", self._ctl_press)
        app.router.add_post("/_local/call_outcome", self._ctl_call_outcome)
        app.router.add_post("/_local/reset", self._ctl_reset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        log.info("twilio_local.started", base_url=self.base_url)

    async def stop(self) -> None:
        """Cancel pending callbacks, close the callback session and unbind."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("twilio_local.stopped", base_url=self.base_url)

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """The next n message POSTs answer `status` with a Twilio error body."""
        self._failures.extend([(status, retry_after)] * n)

    def drop_connection_next(self, n: int, accept: bool = True) -> None:
        """The next n POSTs close the connection unanswered; accept=True records them first."""
        # accept=True is the nasty case: Twilio sent the SMS but our client never heard back.
        self._drops.extend([accept] * n)

    def set_callbacks(self, enabled: bool) -> None:
        """Turn status callbacks on or off; fetched status still progresses."""
        self._callbacks_enabled = enabled

    def set_create_delay(self, seconds: float) -> None:
        """Each accepted create answers only after `seconds`: the message is already recorded
        (and on its way) while the sender still waits, as a slow provider's would be."""
        self._create_delay = max(0.0, seconds)

    def set_list_lag(self, seconds: float) -> None:
        """A message or call shows in list results only `seconds` after it was created, as in
        a provider whose search index trails its writes."""
        self._list_lag = max(0.0, seconds)

    def outage(
        self,
        status: int,
        seconds: float,
        retry_after: float | None = None,
        ops: tuple[str, ...] | list[str] = ("create",),
    ) -> None:
        """For `seconds` from now, every request of `ops` answers `status` with a Twilio error
        body (and Retry-After when given); the outage ends by itself. seconds <= 0 ends it."""
        unknown = sorted(set(ops) - set(OPS))
        if unknown:
            raise ValueError(f"unknown ops {unknown}; expected some of {list(OPS)}")
        if not 400 <= status <= 599:
            raise ValueError(f"outage status {status} is not an HTTP error status")
        ends = time.monotonic() + seconds
        for op in ops:
            if seconds > 0:
                self._outages[op] = (ends, status, retry_after)
            else:
                self._outages.pop(op, None)

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
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout argument reads best in tests
        count: int = 1,
    ) -> list[LocalCall]:
        """Poll until at least count calls match predicate; raise TimeoutError otherwise."""
        return await wait_for_matches(lambda: self.calls, predicate, timeout, count, "call")

    def set_final_status(self, phone: str, status: str) -> None:
        """Messages to phone end "undelivered" or "failed" instead of "delivered"."""
        if status not in FINAL_ERROR_CODES and status != "delivered":
            raise ValueError(f"unsupported final status {status!r}")
        self._final_status[phone] = status

    def reset(self) -> None:
        """Forget messages, calls, scripted input and pending failure injections."""
        self.messages.clear()
        self._by_sid.clear()
        self._by_to.clear()
        self._failures.clear()
        self._drops.clear()
        self._outages.clear()
        self.calls.clear()
        self._calls_by_sid.clear()
        self._presses.clear()
        self._call_outcomes.clear()
        self._create_delay = self._list_lag = 0.0

    def messages_to(self, phone: str) -> list[SentSms]:
        """All messages accepted for phone, oldest first."""
        return list(self._by_to.get(phone, ()))

    async def wait_for(
        self,
        predicate: Callable[[SentSms], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout argument reads best in tests
        count: int = 1,
    ) -> list[SentSms]:
        """Poll until at least count match predicate; raise TimeoutError otherwise."""
        return await wait_for_matches(lambda: self.messages, predicate, timeout, count, "SMS")

    async def send_inbound(
        self, webhook_url: str, from_: str, to: str, body: str
    ) -> tuple[int, str]:
        """Simulate a phone replying: POST a signed Twilio inbound-SMS form to webhook_url."""
        sid = "SM" + secrets.token_hex(16)
        params = self._form(sid, from_, to, SmsMessageSid=sid, Body=body, SmsStatus="received")
        params.update(NumMedia="0", NumSegments="1")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            return await self._post_signed(session, webhook_url, params)

    def _form(self, sid: str, from_: str, to: str, **extra: str) -> dict[str, str]:
        """The fields Twilio puts in every webhook POST about a message."""
        ids = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid}
        return {**ids, "From": from_, "To": to, "ApiVersion": "2010-04-01", **extra}

    async def _post_signed(
        self, session: aiohttp.ClientSession, url: str, params: dict[str, str]
    ) -> tuple[int, str]:
        """POST a form signed with X-Twilio-Signature for exactly this URL."""
        headers = {"X-Twilio-Signature": self._validator.compute_signature(url, params)}
        async with session.post(url, data=params, headers=headers) as resp:
            return resp.status, await resp.text()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """REST calls need HTTP Basic with our sid/token (401) and our account in the URL (404)."""
        if not request.path.startswith(API):
            return await handler(request)  # the /_local control endpoints are open
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Basic {expected}".encode()):
            return _error(401, 20003, "Authenticate")
        if request.match_info.get("account") != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return await handler(request)

    def _injected_outage(self, op: str) -> web.Response | None:
        """The error an outage of `op` answers now, or None when `op` is up."""
        outage = self._outages.get(op)
        if outage is None:
            return None
        ends, status, retry_after = outage
        if time.monotonic() >= ends:
            self._outages.pop(op, None)
            return None
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        text = "Too Many Requests" if status == 429 else "Service unavailable"
        log.info("twilio_local.outage", op=op, status=status)
        return _error(status, 20429 if status == 429 else 20500, text, headers)

    def _listed(self, received_at: float) -> bool:
        """Whether a resource created at received_at shows in list results yet."""
        return time.time() - received_at >= self._list_lag

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if (down := self._injected_outage("create")) is not None:
            return down
        if self._failures:
            status, retry_after = self._failures.popleft()
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            text = "Too Many Requests" if status == 429 else "Service unavailable"
            log.info("twilio_local.injected_failure", status=status)
            return _error(status, 20429 if status == 429 else 20500, text, headers)
        drop = self._drops.popleft() if self._drops else None
        if drop is False:
            return self._drop(request)
        form = await request.post()
        to, from_, body = (str(form.get(k, "")) for k in ("To", "From", "Body"))
        for failed, code, text in (
            (not to, 21604, "A 'To' phone number is required."),
            (not E164.match(to), 21211, f"The 'To' number {to} is not a valid phone number."),
            (not from_, 21603, "A 'From' phone number is required."),
            (not body, 21602, "Message body is required."),
            (len(body) > 1600, 21617, "The message body exceeds the 1600 character limit."),
        ):
            if failed:
                return _error(400, code, text)
        callback = str(form.get("StatusCallback", "")) or None
        sid = "SM" + secrets.token_hex(16)
        sms = SentSms(sid, to, from_, body, callback, "queued", time.time(), self.account_sid)
        self.messages.append(sms)
        self._by_sid[sms.sid] = sms
        self._by_to.setdefault(sms.to, []).append(sms)
        task = asyncio.get_running_loop().create_task(self._progress(sms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._create_delay:
            await asyncio.sleep(self._create_delay)
        if drop:
            return self._drop(request)
        return web.json_response(sms.resource(), status=201)

    def _drop(self, request: web.Request) -> web.Response:
        """Close the socket without answering, as a crashed load balancer would."""
        log.info("twilio_local.dropped_connection")
        if request.transport is not None:
            request.transport.abort()
        # The client is gone; aiohttp discards this response on the closed transport.
        return web.Response(status=500)

    async def _fetch(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("fetch")) is not None:
            return down
        sms = self._by_sid.get(request.match_info["sid"])
        if sms is not None:
            return web.json_response(sms.resource())
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    async def _list(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("list")) is not None:
            return down
        q = request.query
        try:
            # Twilio filters by sent date at day granularity; the library may send a full
            # timestamp (YYYY-MM-DDTHH:MM:SSZ), of which only the date counts.
            on, before, after = (
                date.fromisoformat(q[k][:10]) if q.get(k) else None
                for k in ("DateSent", "DateSent<", "DateSent>")
            )
            page, size = int(q.get("Page", 0)), min(int(q.get("PageSize", 50)), 1000)
        except ValueError:
            return _error(400, 20001, "Invalid query parameter")
        found = []
        candidates = self._by_to.get(q["To"], []) if q.get("To") else self.messages
        for sms in reversed(candidates):  # newest first, like Twilio
            day = (sms.date_sent or sms.date_created).date()
            if (
                self._listed(sms.received_at)
                and (not q.get("To") or sms.to == q["To"])
                and (not q.get("From") or sms.from_ == q["From"])
                and (on is None or day == on)
                and (before is None or day <= before)
                and (after is None or day >= after)
            ):
                found.append(sms)
        return self._page("Messages", found, q, page, size)

    def _page(self, kind: str, found: list[Any], q: Any, page: int, size: int) -> web.Response:
        """One page of a list answer, with Twilio's paging links; only the page's own
        resources are built, so paging through a long list costs each page its size."""
        filters = {k: v for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")}
        uri = f"{API}/Accounts/{self.account_sid}/{kind}.json"

        def page_uri(n: int) -> str:
            return f"{uri}?{urlencode({**filters, 'PageSize': size, 'Page': n})}"

        chunk = found[page * size : (page + 1) * size]
        more = (page + 1) * size < len(found)
        return web.json_response(
            {
                kind.lower(): [item.resource() for item in chunk],
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0),
                "uri": page_uri(page),
            }
        )

    async def _progress(self, sms: SentSms) -> None:
        """Move the message queued → sent → delivered (or the configured final status)."""
        final = self._final_status.get(sms.to, "delivered")
        steps = [final] if final == "failed" else ["sent", final]  # failed never left Twilio
        for status in steps:
            await asyncio.sleep(self.callback_delay)
            now = datetime.now(UTC)
            sms.status, sms.date_updated = status, now
            if status == "sent":
                sms.date_sent = now
            sms.error_code = FINAL_ERROR_CODES.get(status)
            if self._callbacks_enabled and sms.status_callback:
                await self._callback(sms)

    async def _callback(self, sms: SentSms) -> None:
        """POST a signed status callback; failures are logged, never retried (as Twilio)."""
        params = self._form(sms.sid, sms.from_, sms.to, MessageStatus=sms.status)
        params["SmsStatus"] = sms.status
        if sms.error_code is not None:
            params["ErrorCode"] = str(sms.error_code)
        assert sms.status_callback is not None and self._session is not None
        try:
            await self._post_signed(self._session, sms.status_callback, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("twilio_local.callback_failed", sid=sms.sid, error=repr(exc))

    # --- Calls -------------------------------------------------------------------------------

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
                return _error(400, code, text)
        events = tuple(
            e for value in form.getall("StatusCallbackEvent", []) for e in str(value).split()
        )
        bad = sorted(set(events) - set(CALL_EVENTS))
        if bad:
            return _error(400, 21626, f"Invalid StatusCallbackEvent {bad}")
        callback = str(form.get("StatusCallback", "")) or None
        sid = "CA" + secrets.token_hex(16)
        # Twilio reports only the final event unless asked for more.
        call = LocalCall(
            sid, to, from_, url, callback, events or ("completed",), time.time(), self.account_sid
        )
        self.calls.append(call)
        self._calls_by_sid[sid] = call
        task = asyncio.get_running_loop().create_task(self._ring(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(call.resource(), status=201)

    async def _call_fetch(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("call_fetch")) is not None:
            return down
        call = self._calls_by_sid.get(request.match_info["sid"])
        if call is not None:
            return web.json_response(call.resource())
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    async def _call_list(self, request: web.Request) -> web.Response:
        if (down := self._injected_outage("call_list")) is not None:
            return down
        q = request.query
        try:
            on, before, after = (
                date.fromisoformat(q[k][:10]) if q.get(k) else None
                for k in ("StartTime", "StartTime<", "StartTime>")
            )
            page, size = int(q.get("Page", 0)), min(int(q.get("PageSize", 50)), 1000)
        except ValueError:
            return _error(400, 20001, "Invalid query parameter")
        found = []
        for call in reversed(self.calls):
            day = (call.start_time or call.date_created).date()
            if (
                self._listed(call.received_at)
                and (not q.get("To") or call.to == q["To"])
                and (not q.get("From") or call.from_ == q["From"])
                and (not q.get("Status") or call.status == q["Status"])
                and (on is None or day == on)
                and (before is None or day <= before)
                and (after is None or day >= after)
            ):
                found.append(call)
        return self._page("Calls", found, q, page, size)

    async def _ring(self, call: LocalCall) -> None:
        """Play the call out: ring, answer (or not, as scripted), run its TwiML, hang up."""
        outcome = self._call_outcomes.get(call.to, "completed")
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
            except Exception as exc:  # noqa: BLE001 - Twilio hangs up on any application error
                call.error = repr(exc)[:300]
                log.warning("twilio_local.call_error", sid=call.sid, error=call.error)
            call.end_time = datetime.now(UTC)
        await asyncio.sleep(self.callback_delay)
        await self._call_moved(call, "completed", outcome)

    async def _play(self, call: LocalCall) -> None:
        """Fetch the call's TwiML and follow it: Say, Gather (with the scripted digits),
        Redirect, Hangup, as Twilio would."""
        assert self._session is not None
        digits = self._presses.get(call.to, "")
        url, extra = call.url, {}
        for _ in range(MAX_DOCUMENTS):
            status, document = await self._post_signed(
                self._session, url, self._call_form(call, **extra)
            )
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
        if not (self._callbacks_enabled and call.status_callback and event in call.events):
            return
        params = self._call_form(call, CallbackSource="call-progress-events")
        params["SequenceNumber"] = str(CALL_EVENTS.index(event))
        params["Timestamp"] = _rfc2822(call.date_updated) or ""
        if event == "completed":
            duration = call.resource()["duration"] or "0"
            params.update(CallDuration=duration, Duration=duration)
        assert self._session is not None
        try:
            await self._post_signed(self._session, call.status_callback, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("twilio_local.callback_failed", sid=call.sid, error=repr(exc))

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"messages": [{**m.resource(), "received_at": m.received_at} for m in self.messages]}
        )

    async def _ctl_fail_next(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.fail_next(int(spec.get("n", 1)), int(spec.get("status", 500)), spec.get("retry_after"))
        return web.json_response({"ok": True, "pending": len(self._failures)})

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": [c.local_view() for c in self.calls]})

    async def _ctl_outage(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            retry_after = spec.get("retry_after")
            self.outage(
                int(spec.get("status", 500)),
                float(spec.get("seconds", 0)),
                float(retry_after) if retry_after is not None else None,
                tuple(spec.get("ops") or ("create",)),
            )
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, "ops": sorted(self._outages)})

    async def _ctl_create_delay(self, request: web.Request) -> web.Response:
        self.set_create_delay(float((await request.json()).get("seconds", 0)))
        return web.json_response({"ok": True, "seconds": self._create_delay})

    async def _ctl_list_lag(self, request: web.Request) -> web.Response:
        self.set_list_lag(float((await request.json()).get("seconds", 0)))
        return web.json_response({"ok": True, "seconds": self._list_lag})

    async def _ctl_press(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.press(str(spec["phone"]), spec.get("digits"))
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"bad press: {exc}"}, status=400)
        return web.json_response({"ok": True})

    async def _ctl_call_outcome(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.set_call_outcome(str(spec["phone"]), str(spec.get("outcome", "completed")))
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"bad call outcome: {exc}"}, status=400)
        return web.json_response({"ok": True})

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


async def _serve(args: argparse.Namespace) -> None:
    """Run until SIGINT or SIGTERM."""
    server = LocalTwilio(args.account_sid, args.auth_token, args.host, args.port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.base_url}", flush=True)  # a line a parent process can wait for
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m goldenhour.dev.twilio_local --port P --account-sid S ...`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    # stdout carries only the READY line; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
