"""The FastAPI application: routes, shared state, and the outbox relay beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.db import create_pool, migrate
from infra.settings import Settings
from infra.topics import Topics, ensure_topics
from services import alerts_api, children_api, intake, twilio_webhooks
from services.console import ack_link_pages, care, web
from services.console import pages as console_pages
from services.console.board import BoardFeed
from services.outbox import OutboxRelay, kafka_producer
from services.shared_alerts_api import router as shared_alerts_router
from services.subscriptions_api import router as subscriptions_router

log = structlog.get_logger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The API for one process; Kafka and Postgres addresses must be set in `settings`."""
    bootstrap, dsn = settings.require_servers()
    config = settings.config  # refused here, at start, when invalid

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(dsn)
        topics = Topics(settings.topic_prefix)
        await ensure_topics(bootstrap, topics)
        app.state.pool = await create_pool(dsn, min_size=2, max_size=20)
        producer = kafka_producer(bootstrap)
        await producer.start()
        relay = OutboxRelay(dsn, producer, app.state.pool)
        app.state.relay = relay
        app.state.topics = topics
        app.state.board_feed = BoardFeed(dsn)
        await app.state.board_feed.start()
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        log.info("api.started", port=settings.api_port)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.board_feed.stop()
            await producer.stop()
            await app.state.pool.close()

    app = FastAPI(title="Golden Hour", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.config = config
    app.include_router(intake.router, prefix="/api/v1")
    app.include_router(alerts_api.router, prefix="/api/v1")
    app.include_router(children_api.router, prefix="/api/v1")
    app.include_router(twilio_webhooks.router, prefix="/api/v1")
    app.include_router(subscriptions_router, prefix="/api/v1")
    app.include_router(shared_alerts_router, prefix="/api/v1")
    app.include_router(console_pages.router)
    app.include_router(care.router)
    app.include_router(ack_link_pages.router)
    app.mount("/console/static", StaticFiles(directory=web.HERE / "static"), name="static")

    @app.exception_handler(web.NotSignedIn)
    async def sign_in_first(_: Request, exc: web.NotSignedIn) -> Response:
        return web.see_other(f"/console/login?next={quote(exc.path)}")

    @app.exception_handler(web.PageError)
    async def error_page(request: Request, exc: web.PageError) -> Response:
        return web.error_page(request, exc)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return web.see_other("/console")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: Postgres answers and the relay's producer is connected."""
        try:
            await asyncio.wait_for(request.app.state.pool.fetchval("SELECT 1"), 2)
        except Exception as exc:  # any failure means not ready; say which
            return JSONResponse({"status": "unavailable", "database": str(exc)}, 503)
        return JSONResponse(
            {"status": "ready", "outbox_relay_active": request.app.state.relay.active}
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
