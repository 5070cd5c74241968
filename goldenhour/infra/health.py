"""/healthz, /readyz and /metrics for a worker process (streams, dispatcher), and for the API
on a port of its own, kept apart from the public one.

Each readiness check is an async callable answering None when it holds, or the reason it does
not; a check that takes longer than its bound fails with "timed out", so a hung database or
broker makes the worker say 503 instead of hanging its probe.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[str | None]]
T = TypeVar("T")
CHECK_TIMEOUT_S = 2.0


async def within(work: Awaitable[T], timeout_s: float) -> T:
    """`work`'s result, or TimeoutError after `timeout_s` without waiting for it to give up.

    Not `asyncio.wait_for`: that waits for the cancelled work to finish, and an asyncpg call to a
    paused server can take a long while to; a probe must answer in time whatever it probes."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        # Whenever it ends, its outcome is read, so it is never "never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise TimeoutError
    return task.result()


def metrics_refusal(
    tokens: Sequence[str], authorization: str | None
) -> tuple[int, str, dict[str, str]] | None:
    """Why /metrics is refused (status, reason, headers), or None for a holder of one of the
    tokens (two during a rotation: the new and the previous).

    With none, /metrics does not exist (404): its counts of absence reports are nobody's
    business but the operator's."""
    if isinstance(tokens, str):
        raise TypeError("metrics_refusal takes a sequence of tokens, not one string")
    if not tokens:
        return 404, "Not Found", {}
    scheme, _, given = (authorization or "").partition(" ")
    offered = given.strip().encode()
    # Every token compared, so the time taken does not say which one nearly matched.
    held = [hmac.compare_digest(offered, token.encode()) for token in tokens]
    if scheme.lower() == "bearer" and any(held):
        return None
    return 401, "send 'Authorization: Bearer <metrics token>'", {"WWW-Authenticate": "Bearer"}


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """The reasons of every failing check, by name (empty when all hold)."""

    async def one(check: Check) -> str | None:
        try:
            return await within(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return "timed out"
        except Exception as exc:  # any failure is a reason to say not ready
            return repr(exc)[:300]

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return {name: reason for name, reason in zip(checks, results, strict=True) if reason}


class HealthServer:
    """A small HTTP server beside the worker's own loops."""

    def __init__(
        self,
        port: int,
        checks: Mapping[str, Check],
        host: str = "127.0.0.1",
        metrics_tokens: Sequence[str] = (),
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.checks = checks
        if isinstance(metrics_tokens, str):
            raise TypeError("metrics_tokens is a sequence of tokens, not one string")
        self.metrics_tokens = tuple(metrics_tokens)
        # Brings gauges counted elsewhere (the database) up to date before a scrape.
        self.refresh = refresh
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("health.serving", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        failing = await run_checks(self.checks)
        if failing:
            return web.json_response({"status": "unavailable", **failing}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        refused = metrics_refusal(self.metrics_tokens, request.headers.get("Authorization"))
        if refused is not None:
            status, reason, headers = refused
            return web.json_response({"detail": reason}, status=status, headers=headers)
        if self.refresh is not None:
            try:
                await within(self.refresh(), CHECK_TIMEOUT_S)
            except Exception as exc:  # a scrape with a stale gauge beats no scrape
                log.info("health.refresh_failed", error=repr(exc)[:300])
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
