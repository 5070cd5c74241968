"""A local webhook receiver that checks Golden Hour's signatures, for tests and the demo.

It does what docs/webhooks.md asks of a council's receiver (verify the HMAC signature and the
replay window, answer 401 otherwise) and records every request it gets, good or bad, so tests
can see each attempt. Failures and hangs can be injected to exercise retries and timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from goldenhour.dev.waiting import wait_for_matches
from goldenhour.infra.webhook_signing import REPLAY_WINDOW_S, verify

log = structlog.get_logger(__name__)


@dataclass
class ReceivedHook:
    """One POST as the receiver got it; recorded on arrival, whatever it was answered."""

    path: str
    headers: dict[str, str]  # header names as the sender spelled them
    body: bytes  # the raw body, exactly the bytes that were signed
    json: Any  # the body parsed, or None if it was not JSON
    verified: bool  # signature and replay window checked with verify()
    received_at: float  # wall-clock time.time() when the body had arrived
    status: int | None = None  # what it was answered; None while still being handled
    request_id: str | None = None  # the X-Request-Id answered, when request_ids=True

    @property
    def delivery_id(self) -> str | None:
        """X-GoldenHour-Delivery: the same for every retry of one delivery."""
        return self.headers.get("X-GoldenHour-Delivery")


class LocalWebhookReceiver:
    """In-process HTTP receiver: POST to any path; 200 if signed correctly, else 401.

    The secret for a request is `secret_for(path)` when that gives one, else the one given to
    `set_secret`; with neither, nothing verifies. `request_ids=True` (or the id itself) makes it
    answer every accepted request with an X-Request-Id header (the sender then reports that id);
    with an
    `ssl_context` it serves HTTPS.
    """

    def __init__(
        self,
        secret_for: Callable[[str], str | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        request_ids: bool | str = False,
        tolerance_s: int = REPLAY_WINDOW_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.secret_for = secret_for
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.request_ids = request_ids
        self.tolerance_s = tolerance_s
        self.received: list[ReceivedHook] = []
        self._secret: str | None = None
        self._failures: deque[tuple[int, float | None, str | None]] = deque()
        self._hangs: deque[float] = deque()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/hook") -> str:
        """The URL to subscribe with; any path is accepted."""
        return f"{self.base_url}/{path.lstrip('/')}"

    async def start(self) -> None:
        """Bind the HTTP server; port 0 picks a free port."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._hook)
        self._stopping = asyncio.Event()
        # A short shutdown grace: stop() also cuts hangs short, nothing else lingers.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context).start()
        self.port = self._runner.addresses[0][1]
        log.info("webhook_local.started", base_url=self.base_url)

    async def stop(self) -> None:
        """End any hang in progress and unbind."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("webhook_local.stopped", base_url=self.base_url)

    def set_secret(self, secret: str | None) -> None:
        """The secret to verify with when secret_for is absent or has none for the path."""
        self._secret = secret

    def fail_next(
        self, n: int, status: int = 500, retry_after: float | None = None, body: str | None = None
    ) -> None:
        """The next n requests are answered `status` (with Retry-After if given; a 3xx also
        carries a Location), whether or not they verify; `body` as plain text, if given, in
        place of the usual JSON error."""
        self._failures.extend([(status, retry_after, body)] * n)

    def hang_next(self, n: int, seconds: float) -> None:
        """The next n requests are recorded, then answered only after `seconds`."""
        self._hangs.extend([seconds] * n)

    def reset(self) -> None:
        """Forget what was received and any pending failures and hangs."""
        self.received.clear()
        self._failures.clear()
        self._hangs.clear()

    async def wait_for(
        self,
        predicate: Callable[[ReceivedHook], bool],
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[ReceivedHook]:
        """Poll until at least count received requests match; raise TimeoutError otherwise."""
        return await wait_for_matches(
            lambda: self.received, predicate, timeout, count, "webhook deliveries"
        )

    def _secret_for(self, path: str) -> str | None:
        secret = self.secret_for(path) if self.secret_for is not None else None
        return secret if secret is not None else self._secret

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        verified = verify(
            self._secret_for(request.path),
            request.headers.get("X-GoldenHour-Timestamp"),
            request.headers.get("X-GoldenHour-Signature"),
            body,
            now=time.time(),
            tolerance_s=self.tolerance_s,
        )
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        hook = ReceivedHook(request.path, headers, body, parsed, verified, time.time())
        self.received.append(hook)
        response = await self._answer(hook)
        hook.status = response.status
        log.info("webhook_local.received", path=hook.path, status=hook.status, verified=verified)
        return response

    async def _answer(self, hook: ReceivedHook) -> web.Response:
        if self._hangs:
            seconds = self._hangs.popleft()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
            if self._stopping.is_set():
                return web.json_response({"error": "shutting down"}, status=503)
        if self._failures:
            status, retry_after, body = self._failures.popleft()
            headers: dict[str, str] = {}
            if retry_after is not None:
                headers["Retry-After"] = f"{retry_after:g}"
            if 300 <= status < 400:
                headers["Location"] = self.url("/moved" + hook.path)
            if body is not None:
                return web.Response(text=body, status=status, headers=headers)
            return web.json_response({"error": "injected failure"}, status=status, headers=headers)
        if not hook.verified:
            return web.json_response({"error": "bad or missing signature"}, status=401)
        headers = {}
        if self.request_ids:
            given = self.request_ids if isinstance(self.request_ids, str) else None
            hook.request_id = given or f"rcv-{uuid.uuid4().hex[:16]}"
            headers["X-Request-Id"] = hook.request_id
        return web.json_response({"ok": True}, headers=headers)
