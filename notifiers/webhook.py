"""Webhook channel: one signed HTTPS POST per attempt with httpx, and the receiver's check.

Every delivery carries `X-GoldenHour-Timestamp` (unix seconds) and `X-GoldenHour-Signature`
(`sha256=` + hex HMAC-SHA256 with the subscription's secret over "<timestamp>.<raw body>").
`sign` and `verify` are the two halves; docs/webhooks.md tells a receiver how to check one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from urllib.parse import urlsplit

import httpx
import structlog

from notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    SendResult,
    retry_after_seconds,
)

__all__ = ["SIGNATURE_PREFIX", "USER_AGENT", "WebhookChannel", "sign", "verify"]

log = structlog.get_logger(__name__)

USER_AGENT = "GoldenHour-Webhook/1"
SIGNATURE_PREFIX = "sha256="
REPLAY_WINDOW_S = 300
# At most this much of a response is read: only a snippet of it goes into an error message,
# and a receiver must not be able to make us buffer an endless body.
_MAX_RESPONSE_BYTES = 4096
_SNIPPET_CHARS = 200
_MAX_PROVIDER_ID = 200
_DIGITS = re.compile(r"[0-9]{1,15}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-GoldenHour-Signature value: "sha256=" + hex HMAC-SHA256 over "<ts>.<body>"."""
    if not secret:
        raise ValueError("a webhook signing secret must not be empty")
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: str | None,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance_s: int = REPLAY_WINDOW_S,
) -> bool:
    """The receiver's check: a well-formed timestamp within tolerance_s of now (either way,
    so neither an old replay nor a far-future one passes) and a signature that matches the
    raw body, compared in constant time. Never raises on bad input; answers False."""
    if not secret or timestamp_header is None or signature_header is None:
        return False
    stamp = timestamp_header.strip()
    if not _DIGITS.fullmatch(stamp):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    given = signature_header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, given)


def _one_line(text: str, limit: int) -> str:
    """Receiver-controlled text made safe for logs and the audit trail."""
    return " ".join(text.split())[:limit]


def _where(url: str) -> str:
    """scheme://host:port of a URL, for logs: a path or query may hold the receiver's token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "<invalid url>"


class WebhookChannel(Channel):
    """POSTs the JSON body to the subscription's URL, signed; "sent" once it answers 2xx.

    Redirects are never followed (the URL was vetted against server-side request forgery when
    the subscription was made; a redirect could point anywhere), and the environment's proxy
    and .netrc settings are ignored so no stray credentials ride along to a subscriber.
    """

    name = "webhook"
    reports_delivery = False

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        """One shared client, made lazily inside the running loop that uses it."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A client from another (finished) loop cannot be used or closed from this one.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
            )
            self._loop = loop
        return self._client

    def headers_for(self, msg: OutboundMessage, body: bytes, timestamp: int) -> dict[str, str]:
        """Every header of one delivery; the signature covers timestamp and body."""
        if not msg.signing_secret:
            raise PermanentSendError("webhook has no signing secret")
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GoldenHour-Timestamp": str(timestamp),
            "X-GoldenHour-Signature": sign(msg.signing_secret, timestamp, body),
            "X-GoldenHour-Delivery": msg.notification_id,
            "Idempotency-Key": msg.idempotency_key,
        }

    async def send(self, msg: OutboundMessage) -> SendResult:
        """POST once; 2xx → sent, 408/429/5xx/timeout/network → Retryable, 3xx and other 4xx →
        Permanent. A new timestamp and signature are made on every attempt."""
        try:
            scheme = urlsplit(msg.to).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise PermanentSendError(f"webhook URL must be http(s), not {scheme or 'empty'!r}")
        body = msg.body.encode("utf-8")
        timestamp = int(time.time())
        headers = self.headers_for(msg, body, timestamp)
        ctx = {"notification_id": msg.notification_id, "target": _where(msg.to)}
        where = ctx["target"]
        try:
            # httpx's timeout is per phase (connect, each read, ...); this caps the whole
            # attempt, so a receiver that trickles bytes cannot hold a dispatcher slot.
            async with asyncio.timeout(self.timeout * 2 + 1):
                async with self._http().stream(
                    "POST", msg.to, content=body, headers=headers
                ) as response:
                    snippet = await self._read_some(response)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            log.warning("webhook.bad_request", error=repr(exc), **ctx)
            raise PermanentSendError(f"webhook {where}: {exc!r}") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            log.warning("webhook.timeout", error=repr(exc), **ctx)
            raise RetryableSendError(f"webhook {where}: timed out after {self.timeout}s") from exc
        except (httpx.TransportError, OSError) as exc:
            # Connection refused/reset, DNS failure, a receiver that hung up mid-answer.
            log.warning("webhook.transport_error", error=repr(exc), **ctx)
            raise RetryableSendError(f"webhook {where}: {exc!r}") from exc
        return self._outcome(msg, response, snippet, ctx)

    @staticmethod
    async def _read_some(response: httpx.Response) -> str:
        """Up to _MAX_RESPONSE_BYTES of the answer, decoded leniently."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_RESPONSE_BYTES:
                break
        return b"".join(chunks)[:_MAX_RESPONSE_BYTES].decode("utf-8", "replace")

    def _outcome(
        self, msg: OutboundMessage, response: httpx.Response, snippet: str, ctx: dict[str, str]
    ) -> SendResult:
        status = response.status_code
        where = ctx["target"]
        if 200 <= status < 300:
            request_id = _one_line(response.headers.get("X-Request-Id", ""), _MAX_PROVIDER_ID)
            provider_id = request_id or msg.notification_id
            log.info("webhook.delivered", status=status, provider_id=provider_id, **ctx)
            return SendResult(provider_id=provider_id, status="sent")
        text = f"webhook {where} HTTP {status}"
        if snippet.strip():
            text += f": {_one_line(snippet, _SNIPPET_CHARS)}"
        log.warning("webhook.refused", status=status, **ctx)
        if 300 <= status < 400:
            raise PermanentSendError(f"{text} (redirects are not followed)", status)
        if status in (408, 429) or status >= 500:
            raise RetryableSendError(text, retry_after_seconds(response.headers.get("Retry-After")))
        raise PermanentSendError(text, status)

    async def poll(self, provider_id: str) -> str | None:
        """A webhook answer is final: there is nothing to ask about later."""
        return None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """No sent log to search; receivers de-duplicate on X-GoldenHour-Delivery."""
        return None

    async def close(self) -> None:
        """Close the shared HTTP client (if this loop made it)."""
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()
