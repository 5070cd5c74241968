"""The FastAPI application: routes, shared state, and the outbox relay and reconciler beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import asyncpg
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from goldenhour.contracts.api import FieldError, Health, Readiness
from goldenhour.infra import dead_letters
from goldenhour.infra.db import BEAT_STALE_S, create_pool, migrate_or_wait
from goldenhour.infra.faults import is_transient, patiently
from goldenhour.infra.health import CHECK_TIMEOUT_S, Check, HealthServer, metrics_refusal, within
from goldenhour.infra.settings import Settings
from goldenhour.infra.topics import ensure_topics
from goldenhour.services import (
    alerts_api,
    api_schema,
    children_api,
    db,
    figures_api,
    http_limits,
    intake,
    twilio_webhooks,
)
from goldenhour.services.console import (
    ack_link_pages,
    board_pages,
    care,
    case_pages,
    figure_pages,
    rota_pages,
    sign_in,
    web,
)
from goldenhour.services.console.board import BoardFeed
from goldenhour.services.outbox import RELAY_ROLE, OutboxRelay
from goldenhour.services.reconciler import Reconciler
from goldenhour.services.request_ids import RequestIds
from goldenhour.services.rotas_api import router as rotas_router
from goldenhour.services.shared_alerts_api import router as shared_alerts_router
from goldenhour.services.subscriptions_api import router as subscriptions_router

log = structlog.get_logger(__name__)

# No relay has beaten for this long anywhere: accepted events are not reaching the clock.
RELAY_STALE_S = 5.0
# A process just started may itself be the relay about to take the lock.
START_GRACE_S = 10.0


async def database_reasons(app: FastAPI) -> dict[str, str]:
    """Why this process cannot make progress, as the database tells: no relay beating anywhere,
    or a required part with no worker holding its partitions."""
    row = await app.state.pool.fetchrow(db.READINESS, RELAY_ROLE, BEAT_STALE_S)
    reasons: dict[str, str] = {}
    age = row["relay_age_s"]
    started = asyncio.get_running_loop().time() - app.state.started_at
    if (age is None or age > RELAY_STALE_S) and started > START_GRACE_S:
        reasons["outbox_relay"] = (
            "no relay has ever been active" if age is None else f"no active relay for {age:.0f}s"
        )
    for part in app.state.ready_requires:
        if part not in row["parts"]:
            reasons[part] = f"no {part} worker holds its partitions"
    return reasons


async def readiness(app: FastAPI) -> dict[str, str]:
    """Every reason this process cannot make progress, each check bounded (empty: ready)."""

    async def bounded(name: str, check: Callable[[], Awaitable[dict[str, str]]]) -> dict:
        try:
            return await within(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return {name: "unreachable: timed out"}
        except Exception as exc:  # any failure is a reason to say not ready
            return {name: f"unreachable: {exc!r}"[:300]}

    async def broker() -> dict[str, str]:
        await app.state.relay.broker_cluster_id()
        return {}

    results = await asyncio.gather(
        bounded("database", lambda: database_reasons(app)), bounded("broker", broker)
    )
    return {name: reason for result in results for name, reason in result.items()}


def health_checks(app: FastAPI) -> dict[str, Check]:
    """The API's readiness as the health server's checks (on GOLDENHOUR_HEALTH_PORT)."""

    async def database() -> str | None:
        reasons = await database_reasons(app)
        return "; ".join(f"{name}: {reason}" for name, reason in reasons.items()) or None

    async def broker() -> str | None:
        await app.state.relay.broker_cluster_id()
        return None

    return {"database": database, "broker": broker}


async def refresh_metrics(app: FastAPI) -> None:
    """Bring the gauges counted from the database up to date before a scrape."""
    with contextlib.suppress(Exception):  # the gauge keeps its last count
        await asyncio.wait_for(dead_letters.count_open(app.state.pool), 2)


def _methods_at(request: Request) -> list[str]:
    """Every method some route answers at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.methods and compile_path(route.path)[0].match(request.url.path):
            methods |= route.methods
    return sorted(methods)


def create_app(settings: Settings) -> FastAPI:
    """The API for one process; Kafka and Postgres addresses must be set in `settings`."""
    bootstrap, dsn = settings.require_servers()
    config = settings.config  # refused here, at start, when invalid

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Started while the database or broker is down, the API waits for them.
        await patiently(
            "database", lambda: migrate_or_wait(dsn, settings.migrate, settings.db_limits)
        )
        topics = settings.topics
        await patiently("broker", lambda: ensure_topics(bootstrap, topics))
        app.state.pool = await patiently(
            "database",
            lambda: create_pool(
                dsn, min_size=2, max_size=settings.db_pool_max, limits=settings.db_limits
            ),
        )
        relay = OutboxRelay(
            dsn,
            bootstrap,
            app.state.pool,
            settings.db_limits,
            on_new_cluster=lambda: ensure_topics(bootstrap, topics),
        )
        reconciler = Reconciler(
            dsn, bootstrap, app.state.pool, topics, settings.db_limits, nudge=relay.nudge
        )
        app.state.relay = relay
        app.state.reconciler = reconciler
        app.state.topics = topics
        app.state.started_at = asyncio.get_running_loop().time()
        app.state.board_feed = BoardFeed(dsn, limits=settings.db_limits)
        await app.state.board_feed.start()
        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(reconciler.run(), name="reconciler"),
        ]
        health: HealthServer | None = None
        if settings.health_port is not None:
            health = HealthServer(
                settings.health_port,
                health_checks(app),
                host=settings.health_host,
                metrics_tokens=settings.metrics_tokens,
                refresh=lambda: refresh_metrics(app),
            )
            await health.start()
        log.info("api.started", port=settings.api_port, health_port=settings.health_port)
        try:
            yield
        finally:
            if health is not None:
                await health.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.board_feed.stop()
            await app.state.pool.close()

    app = FastAPI(title="Golden Hour", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.config = config
    app.state.ready_requires = [p.strip() for p in settings.ready_requires.split(",") if p.strip()]
    keyed = api_schema.KEYED
    app.include_router(intake.router, prefix="/api/v1", responses=keyed)
    app.include_router(alerts_api.router, prefix="/api/v1", responses=keyed)
    app.include_router(children_api.router, prefix="/api/v1", responses=keyed)
    app.include_router(twilio_webhooks.router, prefix="/api/v1", responses=api_schema.SIGNED)
    app.include_router(subscriptions_router, prefix="/api/v1", responses=keyed)
    app.include_router(rotas_router, prefix="/api/v1", responses=keyed)
    app.include_router(figures_api.router, prefix="/api/v1", responses=keyed)
    app.include_router(shared_alerts_router, prefix="/api/v1", responses=keyed)
    # HTML for people, not operations for clients: kept out of the API's schema.
    for console_router in (sign_in.router, board_pages.router, case_pages.router):
        app.include_router(console_router, include_in_schema=False)
    app.include_router(rota_pages.router, prefix="/console", include_in_schema=False)
    app.include_router(figure_pages.router, prefix="/console", include_in_schema=False)
    app.include_router(care.router, include_in_schema=False)
    app.include_router(ack_link_pages.router, include_in_schema=False)
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

    async def unavailable(_: Request, exc: Exception) -> Response:
        """The database went away mid-request: 503, nothing half-written (each write is one
        transaction), and the client retries with the same event id."""
        if not is_transient(exc):
            raise exc
        log.warning("api.database_unavailable", error=repr(exc)[:300])
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly with the same event_id"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for transient in (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(transient, unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework answers a JSON body it cannot parse with a bare 400; the API's promise
        # for any body it cannot read is a 422 naming the body.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            unreadable = FieldError(loc=["body"], msg="the body is not valid JSON", type="json")
            return JSONResponse({"detail": [unreadable.model_dump()]}, status_code=422)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # The router names only the first route on the path; a client needs every method.
            headers["Allow"] = ", ".join(_methods_at(request))
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready, with the reasons"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: 503 with the reasons while this process cannot make progress (database
        or broker unreachable, no active relay anywhere, a required part not holding its
        partitions). Dead letters are a metric, never a reason."""
        active = request.app.state.relay.active
        reasons = await readiness(request.app)
        if reasons:
            body = {"status": "unavailable", **reasons, "outbox_relay_active": active}
            return JSONResponse(body, 503)
        return JSONResponse({"status": "ready", "outbox_relay_active": active})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process, for the holder of the metrics token only: the
        counts tell how many children are reported missing. With a health port set, they are
        served there only, so no ingress in front of this port can ever expose them."""
        if settings.health_port is not None:
            return JSONResponse({"detail": "Not Found"}, 404)
        refused = metrics_refusal(settings.metrics_tokens, request.headers.get("authorization"))
        if refused is not None:
            return JSONResponse({"detail": refused[1]}, refused[0], headers=refused[2])
        await refresh_metrics(request.app)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    http_limits.install(app, settings)
    app.add_middleware(RequestIds)  # outermost: every answer carries its request's id
    api_schema.install(app)

    return app
