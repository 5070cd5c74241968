"""A local Twilio-compatible Messages API so the real twilio library runs without the cloud."""

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

from infra.waiting import wait_for_matches

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
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.callback_delay = callback_delay
        self.messages: list[SentSms] = []
        self._by_sid: dict[str, SentSms] = {}
        self._validator = RequestValidator(auth_token)
        self._failures: deque[tuple[int, float | None]] = deque()
        self._drops: deque[bool] = deque()
        self._callbacks_enabled = True
        self._final_status: dict[str, str] = {}
        self._create_delay = 0.0
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
        app.router.add_get("/_local/messages", self._ctl_messages)
        app.router.add_post("/_local/fail_next", self._ctl_fail_next)
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

    def set_final_status(self, phone: str, status: str) -> None:
        """Messages to phone end "undelivered" or "failed" instead of "delivered"."""
        if status not in FINAL_ERROR_CODES and status != "delivered":
            raise ValueError(f"unsupported final status {status!r}")
        self._final_status[phone] = status

    def reset(self) -> None:
        """Forget messages and pending failure injections."""
        self.messages.clear()
        self._by_sid.clear()
        self._failures.clear()
        self._drops.clear()

    def messages_to(self, phone: str) -> list[SentSms]:
        """All messages accepted for phone, oldest first."""
        return [m for m in self.messages if m.to == phone]

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

    async def _create(self, request: web.Request) -> web.StreamResponse:
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
        sms = self._by_sid.get(request.match_info["sid"])
        if sms is not None:
            return web.json_response(sms.resource())
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    async def _list(self, request: web.Request) -> web.Response:
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
        for sms in reversed(self.messages):  # newest first, like Twilio
            day = (sms.date_sent or sms.date_created).date()
            if (
                (not q.get("To") or sms.to == q["To"])
                and (not q.get("From") or sms.from_ == q["From"])
                and (on is None or day == on)
                and (before is None or day <= before)
                and (after is None or day >= after)
            ):
                found.append(sms)
        filters = {k: v for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")}
        uri = f"{API}/Accounts/{self.account_sid}/Messages.json"

        def page_uri(n: int) -> str:
            return f"{uri}?{urlencode({**filters, 'PageSize': size, 'Page': n})}"

        chunk = found[page * size : (page + 1) * size]
        more = (page + 1) * size < len(found)
        return web.json_response(
            {
                "messages": [m.resource() for m in chunk],
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

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"messages": [{**m.resource(), "received_at": m.received_at} for m in self.messages]}
        )

    async def _ctl_fail_next(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.fail_next(int(spec.get("n", 1)), int(spec.get("status", 500)), spec.get("retry_after"))
        return web.json_response({"ok": True, "pending": len(self._failures)})

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
    """Command-line entry point: python -m infra.twilio_local --port P --account-sid S ..."""
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
