"""The limits in front of every route, on a small app in process: the body cap, the per-key
rate, the settings they read, and what a sign-in attempt counts against."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.services import intake
from goldenhour.services.auth import authenticate
from goldenhour.services.console.sessions import failure_keys
from goldenhour.services.http_limits import BodyLimit, RateLimit, parse_rate, trusted_proxies

CAP = 1024


def app_reading_bodies() -> tuple[FastAPI, list[int]]:
    """An app whose one route reads its body; the list holds the size of each body it read."""
    app = FastAPI()
    read: list[int] = []

    @app.post("/in")
    async def take(request: Request) -> dict:
        read.append(len(await request.body()))
        return {"read": read[-1]}

    app.add_middleware(BodyLimit, max_bytes=CAP)
    return app, read


def client(app: FastAPI, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )


async def test_a_declared_body_over_the_cap_never_reaches_the_route() -> None:
    app, read = app_reading_bodies()
    async with client(app) as c:
        r = await c.post("/in", content=b"x" * (CAP + 1))
    assert r.status_code == 413
    assert r.json() == {"detail": f"the request body is larger than {CAP} bytes"}
    assert read == []


async def test_a_chunked_body_is_not_read_past_the_cap() -> None:
    app, read = app_reading_bodies()
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"x" * 512

    async with client(app) as c:
        r = await c.post("/in", content=chunks())
    assert r.status_code == 413
    assert f"{CAP} bytes" in r.json()["detail"]
    assert read == []
    # Read only until the cap was crossed: the third 512-byte chunk, of a thousand.
    assert pulled == CAP // 512 + 1


async def test_a_body_at_the_cap_is_read() -> None:
    app, read = app_reading_bodies()
    async with client(app) as c:
        r = await c.post("/in", content=b"x" * CAP)
    assert r.status_code == 200 and read == [CAP]


def rate_limited_app(rate: str) -> tuple[FastAPI, dict[str, str]]:
    raw, keys = directory()
    config = GoldenHourConfig.model_validate(raw)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    item = parse_rate(rate)
    assert item is not None
    app.add_middleware(RateLimit, config=config, rate=item)
    return app, keys


async def test_a_burst_over_the_rate_gets_429_with_retry_after() -> None:
    app, keys = rate_limited_app("3/minute")
    async with client(app, keys["mps-cr1"]) as police, client(app, keys["lbh-dm1"]) as council:
        burst = [(await police.get("/ping")).status_code for _ in range(4)]
        other = await council.get("/ping")
    assert burst == [200, 200, 200, 429]
    assert other.status_code == 200


async def test_the_429_says_when_to_retry() -> None:
    app, keys = rate_limited_app("1/minute")
    async with client(app, keys["mps-cr1"]) as c:
        await c.get("/ping")
        r = await c.get("/ping")
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "1 per 1 minute" in r.json()["detail"]


async def test_requests_without_a_known_key_are_left_to_authentication() -> None:
    app, _ = rate_limited_app("1/minute")
    async with client(app, "not-a-key") as c:
        answers = [(await c.get("/ping")).status_code for _ in range(3)]
    assert answers == [200, 200, 200]


def test_off_means_no_limit_and_a_bad_rate_names_the_setting() -> None:
    assert parse_rate("off") is None and parse_rate(" OFF ") is None
    assert parse_rate("50/second") is not None
    with pytest.raises(SystemExit, match="GOLDENHOUR_API_RATE_LIMIT='fifty'"):
        parse_rate("fifty")


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert trusted_proxies(" 10.0.0.1, 172.28.0.0/24 ,,") == ["10.0.0.1", "172.28.0.0/24"]
    assert trusted_proxies("") == []
    with pytest.raises(SystemExit, match="GOLDENHOUR_TRUSTED_PROXIES: 'proxy.local'"):
        trusted_proxies("10.0.0.1,proxy.local")


@pytest.mark.parametrize(
    ("user_id", "keys"),
    [
        # The user name from this address: five wrong passwords from anywhere else never
        # lock the user out here.
        ("LBH-DM1", ["user:lbh-dm1@192.0.2.4", "user:lbh-dm1", "addr:192.0.2.4"]),
        # A key cannot be guessed: only the address counts, so one caller's bad key does not
        # lock every key holder out of the console.
        (None, ["addr:192.0.2.4"]),
    ],
)
def test_what_a_sign_in_attempt_counts_against(user_id: str | None, keys: list[str]) -> None:
    assert failure_keys(user_id, "192.0.2.4") == keys


def test_an_ipv6_client_counts_by_its_64() -> None:
    """One household or attacker holds a /64 whole: moving within it is the same address."""
    one = failure_keys("lbh-dm1", "2001:db8:1:2::5")
    other = failure_keys("lbh-dm1", "2001:db8:1:2:ffff::9")
    assert (
        one == other == ["user:lbh-dm1@2001:db8:1:2::/64", "user:lbh-dm1", "addr:2001:db8:1:2::/64"]
    )
    assert failure_keys(None, "::ffff:192.0.2.4") == ["addr:192.0.2.4"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_event_over_its_own_cap_is_refused_where_the_app_allows_more(
    declared: bool,
) -> None:
    app = FastAPI()
    app.include_router(intake.router)
    app.dependency_overrides[authenticate] = lambda: None  # refused before the caller matters
    app.add_middleware(BodyLimit, max_bytes=1024 * 1024)
    body = b"x" * (intake.MAX_EVENT_BODY + 1)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    refused = {"type": "unknown", "reason": "too_large"}
    before = REGISTRY.get_sample_value("goldenhour_events_refused_total", refused) or 0
    async with client(app) as c:
        r = await c.post("/events", content=body if declared else chunks())
    assert r.status_code == 413
    assert r.json() == {"detail": f"body larger than {intake.MAX_EVENT_BODY} bytes"}
    assert REGISTRY.get_sample_value("goldenhour_events_refused_total", refused) == before + 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_event_the_apps_cap_refuses_is_counted_as_an_event_refused(
    declared: bool,
) -> None:
    """The app's cap refuses most large bodies before the intake route reads them: an event's
    still counts in the refusals, and another route's does not."""
    app = FastAPI()
    app.include_router(intake.router, prefix="/api/v1")
    app.dependency_overrides[authenticate] = lambda: None

    @app.post("/api/v1/other")
    async def other(request: Request) -> dict:
        await request.body()
        return {}

    app.add_middleware(BodyLimit, max_bytes=1024, on_refused=intake.count_body_refused)
    body = b"x" * 2048

    def content() -> bytes | AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield body

        return body if declared else chunks()

    refused = {"type": "unknown", "reason": "too_large"}
    before = REGISTRY.get_sample_value("goldenhour_events_refused_total", refused) or 0
    async with client(app) as c:
        assert (await c.post(intake.EVENTS_PATH, content=content())).status_code == 413
        assert (await c.post("/api/v1/other", content=content())).status_code == 413
    assert REGISTRY.get_sample_value("goldenhour_events_refused_total", refused) == before + 1
