"""Limits every request meets before a route sees it: a body cap, a rate per API key, and which
peers' `X-Forwarded-For` is believed.

Pure ASGI middleware: a body over the cap is refused before it is read (by its Content-Length),
or as soon as a chunked one crosses it, so a large upload costs the server nothing but the cap.
Not Starlette's own body limit: that one runs the route until it reads, and answers plain text.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections.abc import Callable

import structlog
from fastapi import FastAPI
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.infra.settings import Settings
from goldenhour.services import intake
from goldenhour.services.auth import key_owner

log = structlog.get_logger(__name__)


async def _send_json(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyTooLarge(HTTPException):
    """A streamed body crossed the cap: the route stops reading and answers 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimit:
    """413 for a body over `max_bytes`: at once by Content-Length, or when a chunked body
    crosses it (nothing more is read)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, on_refused: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused  # told the path of each body refused at once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            log.info("http.body_refused", path=scope["path"], declared=int(declared))
            if self.on_refused is not None:
                self.on_refused(scope["path"])
            detail = BodyTooLarge(self.max_bytes).detail
            # Not "Connection: close": closing with the body unread resets the connection, and
            # the client could lose the answer; the server drops the body as it arrives.
            await _send_json(send, 413, detail, {})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised from inside the route's read: FastAPI passes an HTTPException on as
                    # it is, so the answer is the app's own 413 and the rest is never read (the
                    # server drops what still arrives).
                    if self.on_refused is not None:
                        self.on_refused(scope["path"])
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def api_key_of(scope: Scope) -> str | None:
    """The bearer key of a request, if it carries one."""
    scheme, _, key = (_header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


class RateLimit:
    """429 with Retry-After once an API key's user has made more requests than `rate` allows.

    Counted in this process's memory (a moving window), so each API replica allows the rate on
    its own: with N replicas behind a balancer a key gets up to N times the rate. Requests
    without a known key are not counted here: they are refused by authentication."""

    def __init__(
        self,
        app: ASGIApp,
        config: GoldenHourConfig,
        rate: RateLimitItem,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.config = config
        self.rate = rate
        self.clock = clock
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = self._user(scope) if scope["type"] == "http" else None
        if user_id is not None and not self.limiter.hit(self.rate, user_id):
            reset_at = self.limiter.get_window_stats(self.rate, user_id).reset_time
            retry_after = max(1, math.ceil(reset_at - self.clock()))
            log.info("http.rate_limited", user_id=user_id, path=scope["path"])
            detail = f"too many requests for this API key: at most {self.rate}; retry later"
            await _send_json(send, 429, detail, {"Retry-After": str(retry_after)})
            return
        await self.app(scope, receive, send)

    def _user(self, scope: Scope) -> str | None:
        key = api_key_of(scope)
        found = key_owner(self.config, scope.setdefault("state", {}), key) if key else None
        return found[1].id if found else None


def parse_rate(value: str) -> RateLimitItem | None:
    """A rate such as "50/second", or None for "off"; a clear error naming the setting."""
    if value.strip().lower() == "off":
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise SystemExit(
            f"GOLDENHOUR_API_RATE_LIMIT={value!r} is not a rate such as '50/second' (or 'off')"
        ) from exc


def trusted_proxies(value: str) -> list[str]:
    """The proxies' IPs or CIDRs, from a comma-separated setting; refused at start, naming the
    setting, when one is neither."""
    proxies = [p.strip() for p in value.split(",") if p.strip()]
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SystemExit(
                f"GOLDENHOUR_TRUSTED_PROXIES: {proxy!r} is not an IP address or CIDR"
            ) from None
    return proxies


def install(app: FastAPI, settings: Settings) -> None:
    """Put every limit in front of `app`'s routes: the proxy's client address first (outermost),
    so the limits behind it see the real client."""
    rate = parse_rate(settings.api_rate_limit)
    if rate is not None:
        app.add_middleware(RateLimit, config=settings.config, rate=rate)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, on_refused=intake.count_body_refused
    )
    trusted = trusted_proxies(settings.trusted_proxies)
    # Without trusted proxies the peer address counts, whatever X-Forwarded-For says.
    if trusted:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
