"""SMS channel: one Twilio Messages API call per attempt, through the real twilio library."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import uuid
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    SendResult,
    retry_after_seconds,
)

log = structlog.get_logger(__name__)

# Twilio's answers about our account, not the recipient: 401 (credentials), 403 (suspended or
# not permitted); a create's 404 (no such account) and any refused list are ours too.
_ACCOUNT_TROUBLE = frozenset({401, 403})
T = TypeVar("T")

# How much further back than the message's first attempt its copy at Twilio is looked for. The
# attempt's age is the database's, measured back from Twilio's own now (its answer's Date), so
# the clocks' disagreement cancels out; this covers Twilio's whole-second dates and the moments
# between the claim and the look.
LOOK_MARGIN = timedelta(minutes=2)
# A look pages through a number's recent messages, each page bounded by the client's timeout;
# the whole look by this many of them.
LOOK_PAGES_BOUND = 3
REF_LEN = 6
# Statuses answered by Twilio that say the request was refused, so nothing was created.
_REFUSED = frozenset({429, 503})


def ref_of(notification_id: str) -> str:
    """The marker unique to one message: 6 base32 characters of its notification id."""
    raw = uuid.UUID(notification_id).bytes
    return base64.b32encode(raw).decode("ascii")[:REF_LEN]


def with_ref(body: str, notification_id: str) -> str:
    """The SMS as sent: the body and its marker, which the reconcile looks for (Twilio may
    rewrite other characters, never these)."""
    return f"{body} Ref {ref_of(notification_id)}"


def provider_now(headers: Mapping[str, str] | None) -> datetime:
    """The provider's time by its answer's Date header; this host's when it sent none."""
    for key, value in (headers or {}).items():
        if key.lower() == "date":
            try:
                return parsedate_to_datetime(value).astimezone(UTC)
            except (TypeError, ValueError):
                break
    return datetime.now(UTC)


def earliest_copy(
    tried_for: timedelta | None, headers: Mapping[str, str] | None
) -> datetime | None:
    """By the provider's clock, the oldest a copy of a message tried for `tried_for` can be
    (None: no bound is known)."""
    if tried_for is None:
        return None
    return provider_now(headers) - tried_for - LOOK_MARGIN


def _written(exc: BaseException) -> bool:
    """Whether a transport failure may have come after the request reached Twilio."""
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return False  # never connected: nothing was written
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    return not (connect_timeout is not None and isinstance(exc, connect_timeout))


# Headers of the last Twilio response seen by *this task*: TwilioRestException drops them,
# and Retry-After lives there. A ContextVar keeps concurrent sends from seeing each other's.
_last_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "twilio_last_headers", default=None
)


def last_headers() -> dict[str, str] | None:
    """The headers of this task's last Twilio answer (None before any)."""
    return _last_headers.get()


class _TimedHttpClient(AsyncTwilioHttpClient):
    """Twilio's aiohttp client with a real default timeout and response headers kept."""

    async def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # the library's signature
        allow_redirects: bool = False,
    ) -> Response:
        if auth is not None:
            # aiohttp 3.14 deprecates its auth= parameter; an explicit header says the same.
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        # The library passes timeout=None, which aiohttp reads as "wait forever".
        response = await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        _last_headers.set(dict(response.headers or {}))
        return response


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from the Retry-After header, if any."""
    return retry_after_seconds(
        next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    )


class TwilioSms(Channel):
    """Channel that sends SMS with Twilio; point api_base_url at a local server for tests."""

    name = "sms"
    reports_delivery = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        self.api_base_url = api_base_url
        self.timeout = timeout
        self._auth_token = auth_token
        self._client: Client | None = None
        self._http: _TimedHttpClient | None = None

    def _twilio(self) -> Client:
        """Build the client lazily: aiohttp sessions need a running event loop."""
        if self._client is None:
            self._http = _TimedHttpClient(timeout=self.timeout)
            # environment={} so stray TWILIO_* variables (region, edge) cannot reroute us.
            client = Client(
                self.account_sid, self._auth_token, http_client=self._http, environment={}
            )
            if self.api_base_url:
                client.api.base_url = self.api_base_url.rstrip("/")
            self._client = client
        return self._client

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        """Await one Twilio call (a list: all its pages) and translate failures into the
        channel's two error kinds; the error's text says what Twilio answered, and the caller
        logs it where it is handled."""
        creates = op.endswith("create")  # only a create can leave something behind
        pages = LOOK_PAGES_BOUND if op.endswith("list") else 1
        _last_headers.set(None)
        try:
            # Belt and braces: aiohttp's timeout covers each request, this the rest. Not
            # wait_for: a new task would hide the _last_headers it sets from this one.
            async with asyncio.timeout(pages * self.timeout + 1):
                return await call
        except (TwilioRestException, TwilioServiceException) as exc:
            status, code = exc.status, exc.code
            text = f"twilio {op} HTTP {status} code {code}: {getattr(exc, 'msg', '') or exc}"
            if status == 429 or status >= 500:
                # A 500 may come from a Twilio that created the message and then failed.
                ambiguous = creates and status not in _REFUSED
                retry_after = _retry_after(_last_headers.get() or {})
                raise RetryableSendError(text, retry_after, ambiguous) from exc
            if status in _ACCOUNT_TROUBLE or op.endswith("list") or (creates and status == 404):
                # A rotated token, a suspended account, a wrong SID, or a lookup that failed:
                # nothing about this recipient, and nothing to give the message up for. Retried
                # until the operators mend it; the failover and the unreachable notice tell them.
                raise RetryableSendError(text) from exc
            raise PermanentSendError(text, code) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ambiguous = creates and _written(exc)
            raise RetryableSendError(f"twilio {op}: {exc!r}", ambiguous=ambiguous) from exc
        except TwilioException as exc:
            # e.g. a list page that came back non-200: the provider is unwell, not us.
            raise RetryableSendError(f"twilio {op}: {exc!r}") from exc

    async def _fetch(self, op: str, call: Awaitable[T]) -> T | None:
        """One Twilio fetch, as `_call`; None when Twilio does not know the SID."""
        try:
            return await self._call(op, call)
        except PermanentSendError as exc:
            if exc.code == 20404:
                return None
            raise

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Create one Twilio message; 429/5xx/network → Retryable, other 4xx → Permanent."""
        body = with_ref(msg.body, msg.notification_id)
        kwargs: dict[str, Any] = {"to": msg.to, "from_": self.from_number, "body": body}
        if msg.status_callback_url:
            kwargs["status_callback"] = msg.status_callback_url
        created = await self._call(
            "create",
            self._twilio().messages.create_async(**kwargs),
        )
        # queued/accepted/sending all mean "Twilio has it": the caller's word for that is "sent".
        status = "delivered" if created.status == "delivered" else "sent"
        log.info("sms.sent", sid=created.sid, notification_id=msg.notification_id)
        return SendResult(provider_id=str(created.sid), status=status)

    async def poll(self, provider_id: str) -> str | None:
        """Twilio's current status for the SID, None if Twilio does not know it."""
        fetched = await self._fetch("fetch", self._twilio().messages(provider_id).fetch_async())
        return str(fetched.status) if fetched is not None and fetched.status else None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """SID of a message to msg's recipient that carries msg's marker, else None.

        No DateSent filter: Twilio leaves it empty while a message is queued. Twilio lists
        newest first; the scan pages back to just before the message's first attempt, so a
        busy number never hides the message behind a page, and a control room's day of
        messages is not read on every look."""
        marker = f"Ref {ref_of(msg.notification_id)}"
        kwargs: dict[str, Any] = {"to": msg.to, "from_": self.from_number, "page_size": 200}

        async def scan() -> Any | None:
            stream = await self._twilio().messages.stream_async(**kwargs)
            since = earliest_copy(msg.tried_for, _last_headers.get())  # the first page's Date
            # The marker is this message's own: the first copy found is the one, and the
            # scan stops there rather than page through a busy number's whole window.
            async for m in stream:
                if since is not None and m.date_created is not None and m.date_created < since:
                    return None
                if marker in (m.body or "") and m.status != "failed":  # failed never left
                    return m
            return None

        found = await self._call("list", scan())
        if found is None:
            return None
        log.info("sms.found_sent", sid=found.sid, notification_id=msg.notification_id)
        return str(found.sid)

    async def close(self) -> None:
        """Close the aiohttp session under the twilio client."""
        if self._http is not None:
            await self._http.close()
        self._http = None
        self._client = None
