"""Webhook channel: one signed HTTPS POST per attempt with httpx, and the receiver's check.

Every delivery is signed with `infra.webhook_signing.sign` (docs/webhooks.md tells a receiver
how to check one).

Every new connection resolves the host once, vets every address with the rule subscriptions are
made under (`infra.webhook_urls`), and connects to a vetted address: the name is never looked
up a second time, so it cannot be pointed at an internal address between check and connect. The
request keeps the name for its Host header, TLS server name and certificate check. What the
receiver answers is kept to its status code: its body never reaches a log, the delivery's error
or its owner's email.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx
import structlog

from goldenhour.infra.webhook_signing import sign
from goldenhour.infra.webhook_urls import (
    NonPublicAddress,
    Resolver,
    UnresolvableHost,
    WebhookUrlError,
    resolve_and_vet,
    resolve_host,
)
from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    SendResult,
    retry_after_seconds,
)

__all__ = ["USER_AGENT", "WebhookChannel"]

log = structlog.get_logger(__name__)

USER_AGENT = "GoldenHour-Webhook/1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class VettedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the host resolved to just now and that passed the vetting.

    httpcore hands each new connection's host name here; TLS is started afterwards on the
    stream with that same name, so the certificate is checked for the name, not the address.
    """

    def __init__(self, allow_private: bool, resolve: Resolver) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # resolve_and_vet answers at least one address, or raises.
        *others, last = await resolve_and_vet(host, port, self.allow_private, self.resolve)
        for address in others:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # another of the vetted addresses may answer
        return await self._inner.connect_tcp(
            str(last), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a connection pool that connects through VettedBackend."""

    def __init__(self, backend: VettedBackend, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False)
        # httpx 0.28 takes no network backend, so its pool is remade with one (same TLS setup).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )


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

    Every connection goes to an address vetted when it was made (`VettedBackend`); with
    `allow_private` (tests, the demo) private addresses pass, but the connection still goes
    to the address resolved that once. `resolve` is the name lookup and `ssl_context` the
    certificates trusted (the system's by default), both replaceable in tests.
    Redirects are never followed (a redirect could point anywhere), and the environment's proxy
    and .netrc settings are ignored so no stray credentials ride along to a subscriber.
    """

    name = "webhook"
    reports_delivery = False

    def __init__(
        self,
        timeout: float = 10.0,
        allow_private: bool = False,
        resolve: Resolver = resolve_host,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolve = resolve
        self.ssl_context = ssl_context
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
                transport=_VettedTransport(
                    VettedBackend(self.allow_private, self.resolve), self.ssl_context
                ),
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
                # Streamed and never read: nothing of the answer but its status and headers
                # is used, so a receiver cannot make us buffer a body either.
                async with self._http().stream(
                    "POST", msg.to, content=body, headers=headers
                ) as response:
                    pass
        except NonPublicAddress as exc:
            log.warning("webhook.address_refused", reason=exc.reason, **ctx)
            raise PermanentSendError(
                f"webhook {where}: not sent, the host resolved to a {exc.reason} address;"
                " webhooks go to public addresses only"
            ) from None
        except UnresolvableHost as exc:
            log.warning("webhook.unresolvable", **ctx)
            why = str(exc).removeprefix("webhook_url: ")
            raise RetryableSendError(f"webhook {where}: {why}") from None
        except WebhookUrlError as exc:
            log.warning("webhook.address_refused", reason="unusable address", **ctx)
            raise PermanentSendError(f"webhook {where}: not sent, {exc}") from None
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # The exception's text may quote the whole URL, path and all: only its kind is told.
            log.warning("webhook.bad_request", error=type(exc).__name__, **ctx)
            raise PermanentSendError(f"webhook {where}: {type(exc).__name__}") from None
        except (httpx.TimeoutException, TimeoutError) as exc:
            log.warning("webhook.timeout", error=repr(exc), **ctx)
            raise RetryableSendError(f"webhook {where}: timed out after {self.timeout}s") from exc
        except (httpx.TransportError, OSError) as exc:
            # Connection refused/reset, a receiver that hung up mid-answer.
            log.warning("webhook.transport_error", error=repr(exc), **ctx)
            raise RetryableSendError(f"webhook {where}: {exc!r}") from exc
        return self._outcome(msg, response, ctx)

    def _outcome(
        self, msg: OutboundMessage, response: httpx.Response, ctx: dict[str, str]
    ) -> SendResult:
        """2xx → sent; else an error with the status code and nothing the receiver wrote."""
        status = response.status_code
        where = ctx["target"]
        if 200 <= status < 300:
            # Our own id, never the receiver's X-Request-Id: the provider id shows on the
            # alert's timeline to the child's agencies, and a subscriber's text has no place
            # there. Theirs goes to our log, in the shape of an id or not at all.
            request_id = response.headers.get("X-Request-Id", "").strip()
            log.info(
                "webhook.delivered",
                status=status,
                receiver_request_id=request_id if _REQUEST_ID.fullmatch(request_id) else None,
                **ctx,
            )
            return SendResult(provider_id=msg.notification_id, status="sent")
        text = f"webhook {where} HTTP {status}"
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
