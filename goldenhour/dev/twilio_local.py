"""A local Twilio-compatible Messages and Calls API so the real twilio library runs without the
cloud: calls fetch and play their TwiML, take scripted keypad input and report their progress.

The Messages half is `twilio_messages.py`, the Calls half `twilio_calls.py`; this module is the
server they make together, its fault switches and its `/_local` control endpoints."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aiohttp
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

from goldenhour.dev.twilio_calls import CallsApi, LocalCall
from goldenhour.dev.twilio_messages import MessagesApi, SentSms
from goldenhour.dev.twilio_rest import API, OPS, twilio_error

__all__ = ["LocalTwilio", "SentSms", "main"]

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalTwilio(MessagesApi, CallsApi):
    """In-process Twilio Messages and Calls API with status callbacks and failure injection."""

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
        self._by_to: dict[str, list[SentSms]] = {}
        self._validator = RequestValidator(auth_token)
        self._failures: deque[tuple[int, float | None]] = deque()
        self._drops: deque[bool] = deque()
        self._callbacks_enabled = True
        # Set while calls may progress; cleared, each new call waits before it posts anything.
        self._calls_released = asyncio.Event()
        self._calls_released.set()
        self._final_status: dict[str, str] = {}
        self._create_delay = 0.0
        self._list_lag = 0.0
        self._list_delay = 0.0
        self.message_pages_listed = 0
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
        app.router.add_post("/_local/hold_callbacks", self._ctl_hold_callbacks)
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

    def set_callbacks(self, enabled: bool) -> None:
        """Turn status callbacks on or off; fetched status still progresses."""
        self._callbacks_enabled = enabled

    def hold_callbacks(self, held: bool) -> None:
        """While held, a call waits before it posts anything to our endpoints (neither its
        status callbacks nor its TwiML fetch), as when they reach a loaded API late; released,
        the waiting calls go on in the order they were placed."""
        if held:
            self._calls_released.clear()
        else:
            self._calls_released.set()

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
        self._calls_released.set()
        self._create_delay = self._list_lag = self._list_delay = 0.0
        self.message_pages_listed = 0

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """REST calls need HTTP Basic with our sid/token (401) and our account in the URL (404)."""
        if not request.path.startswith(API):
            return await handler(request)  # the /_local control endpoints are open
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Basic {expected}".encode()):
            return twilio_error(401, 20003, "Authenticate")
        if request.match_info.get("account") != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return await handler(request)

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

    async def _ctl_hold_callbacks(self, request: web.Request) -> web.Response:
        held = (await request.json()).get("held", True)
        if not isinstance(held, bool):
            return web.json_response({"error": "held must be true or false"}, status=400)
        self.hold_callbacks(held)
        return web.json_response({"ok": True, "held": held})

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


async def serve(server: LocalTwilio) -> None:
    """Run `server` until SIGINT or SIGTERM."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.base_url}", flush=True)  # a line a parent process can wait for
    await stop.wait()
    await server.stop()


def main(
    argv: list[str] | None = None,
    server: type[LocalTwilio] = LocalTwilio,
    description: str | None = __doc__,
) -> None:
    """Command line: `python -m goldenhour.dev.twilio_local --port P --account-sid S ...`,
    serving `server` (LocalTwilio or a subclass)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    # stdout carries only the READY line; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(server(args.account_sid, args.auth_token, args.host, args.port)))


if __name__ == "__main__":
    main()
