"""The Messages half of the local Twilio server: message resources, their REST handlers, their
delivery progress and callbacks, inbound replies, and the failures tests script."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from goldenhour.dev.twilio_rest import (
    API,
    E164,
    RestBase,
    not_found,
    rfc2822,
    twilio_error,
    unavailable,
)
from goldenhour.dev.waiting import wait_for_matches

log = structlog.get_logger(__name__)

# Twilio's error codes for a message that never reached the handset.
FINAL_ERROR_CODES = {"undelivered": 30003, "failed": 30008}
# Message-resource fields a local fake never varies (no pricing, no messaging services).
FIXED_FIELDS = dict(
    api_version="2010-04-01", direction="outbound-api", num_media="0", price_unit="USD"
)
FIXED_FIELDS.update(dict.fromkeys(("error_message", "messaging_service_sid", "price")))
DATE_FIELDS = ("created", "sent", "updated")


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
        dates = {f"date_{k}": rfc2822(getattr(self, f"date_{k}")) for k in DATE_FIELDS}
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


class MessagesApi(RestBase):
    """LocalTwilio's Messages API: create, fetch and list, and what tests script of it."""

    messages: list[SentSms]
    _by_sid: dict[str, SentSms]
    # A busy number (a control room) has thousands: a list by `To` must not scan them all.
    _by_to: dict[str, list[SentSms]]
    _failures: deque[tuple[int, float | None]]
    _drops: deque[bool]
    _final_status: dict[str, str]
    _create_delay: float
    _list_delay: float
    message_pages_listed: int  # Messages list pages answered, for tests of how far a look reads

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """The next n message POSTs answer `status` with a Twilio error body."""
        self._failures.extend([(status, retry_after)] * n)

    def drop_connection_next(self, n: int, accept: bool = True) -> None:
        """The next n POSTs close the connection unanswered; accept=True records them first."""
        # accept=True is the nasty case: Twilio sent the SMS but our client never heard back.
        self._drops.extend([accept] * n)

    def set_create_delay(self, seconds: float) -> None:
        """Each accepted create answers only after `seconds`: the message is already recorded
        (and on its way) while the sender still waits, as a slow provider's would be."""
        self._create_delay = max(0.0, seconds)

    def set_list_delay(self, seconds: float) -> None:
        """Each Messages list page answers only after `seconds`, as a provider's does when a
        busy number's pages are large and it is loaded."""
        self._list_delay = max(0.0, seconds)

    def set_final_status(self, phone: str, status: str) -> None:
        """Messages to phone end "undelivered" or "failed" instead of "delivered"."""
        if status not in FINAL_ERROR_CODES and status != "delivered":
            raise ValueError(f"unsupported final status {status!r}")
        self._final_status[phone] = status

    def messages_to(self, phone: str) -> list[SentSms]:
        """All messages accepted for phone, oldest first."""
        return list(self._by_to.get(phone, ()))

    async def wait_for(
        self,
        predicate: Callable[[SentSms], bool],
        timeout: float = 5.0,
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

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if (down := self._injected_outage("create")) is not None:
            return down
        if self._failures:
            status, retry_after = self._failures.popleft()
            log.info("twilio_local.injected_failure", status=status)
            return unavailable(status, retry_after)
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
                return twilio_error(400, code, text)
        callback = str(form.get("StatusCallback", "")) or None
        sid = "SM" + secrets.token_hex(16)
        sms = SentSms(sid, to, from_, body, callback, "queued", time.time(), self.account_sid)
        self.messages.append(sms)
        self._by_sid[sms.sid] = sms
        self._by_to.setdefault(sms.to, []).append(sms)
        self._spawn(self._progress(sms))
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
        return not_found(request)

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
        except ValueError:
            return twilio_error(400, 20001, "Invalid query parameter")

        def matches(sms: SentSms) -> bool:
            day = (sms.date_sent or sms.date_created).date()
            return (
                self._listed(sms.received_at)
                and (not q.get("To") or sms.to == q["To"])
                and (not q.get("From") or sms.from_ == q["From"])
                and (on is None or day == on)
                and (before is None or day <= before)
                and (after is None or day >= after)
            )

        candidates = self._by_to.get(q["To"], []) if q.get("To") else self.messages
        self.message_pages_listed += 1
        if self._list_delay:
            await asyncio.sleep(self._list_delay)
        return self._page("Messages", candidates, matches, q)

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
                await self._callback(sms, sms.status_callback)

    async def _callback(self, sms: SentSms, url: str) -> None:
        """POST a signed status callback; failures are logged, never retried (as Twilio)."""
        params = self._form(sms.sid, sms.from_, sms.to, MessageStatus=sms.status)
        params["SmsStatus"] = sms.status
        if sms.error_code is not None:
            params["ErrorCode"] = str(sms.error_code)
        try:
            await self._post_signed(self._callback_session(), url, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("twilio_local.callback_failed", sid=sms.sid, error=repr(exc))
