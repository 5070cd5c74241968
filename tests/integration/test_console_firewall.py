"""The immigration firewall at the console's door: a user of such an organisation, were one ever
to slip into the directory, signs in neither with a key nor with a password, and a session made
for them opens nothing. The real application over a real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import yaml
from fastapi import FastAPI

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.london import directory
from goldenhour.infra.settings import Settings
from goldenhour.services import passwords
from goldenhour.services.app import create_app
from goldenhour.services.auth import Caller
from goldenhour.services.console import sessions
from tests.e2e.helpers import sneak_key_in

PASSWORD = "a long enough password for hoie"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def app(migrated_db: str, pool: asyncpg.Pool, tmp_path) -> FastAPI:
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(directory()[0]))
    settings = Settings.model_validate(
        {
            "GOLDENHOUR_CONFIG": str(path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "GOLDENHOUR_DATABASE_URL": migrated_db,
        }
    )
    application = create_app(settings)
    config = application.state.config
    sneak_key_in(config)
    # ... and by its user id too, as a password or a session would find it.
    config._users["hoie-1"] = config.user_for_key_hash(hash_api_key("hoie-key"))
    # The routes under test need only the database; the lifespan would wait for a broker.
    application.state.pool = pool
    return application


def client(app: FastAPI, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    header = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://console.test",
        headers={"Cookie": header} if header else {},
    )


async def sign_in(app: FastAPI, form: dict[str, str]) -> httpx.Response:
    async with client(app) as c:
        page = await c.get("/console/login")
        token = page.cookies[sessions.LOGIN_CSRF_COOKIE]
        found = CSRF.search(page.text)
        assert found
        c.headers["Cookie"] = f"{sessions.LOGIN_CSRF_COOKIE}={token}"
        return await c.post("/console/login", data={**form, "csrf_token": found.group(1)})


async def sessions_of(app: FastAPI, user_id: str) -> int:
    return await app.state.pool.fetchval(
        "SELECT count(*) FROM console_sessions WHERE user_id = $1", user_id
    )


async def test_its_key_does_not_sign_in(app: FastAPI) -> None:
    r = await sign_in(app, {"api_key": "hoie-key"})
    assert r.status_code == 401 and "gh_session" not in r.headers.get("set-cookie", "")
    assert await sessions_of(app, "hoie-1") == 0


async def test_its_password_does_not_sign_in(app: FastAPI) -> None:
    async with app.state.pool.acquire() as conn:
        await passwords.set_password(conn, "hoie-1", PASSWORD)
    r = await sign_in(app, {"user_id": "hoie-1", "password": PASSWORD})
    assert r.status_code == 401 and "gh_session" not in r.headers.get("set-cookie", "")
    assert await sessions_of(app, "hoie-1") == 0


async def test_a_session_made_for_it_opens_nothing(app: FastAPI) -> None:
    org, user = app.state.config.user_for_key_hash(hash_api_key("hoie-key"))
    caller = Caller(org=org, user=user)
    token = await sessions.start(app.state.pool, caller, timedelta(hours=1), datetime.now(UTC))
    async with client(app, {sessions.COOKIE: token}) as c:
        for path in ("/console", "/console/care", "/console/board/rows"):
            r = await c.get(path, follow_redirects=False)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/console/login")


async def test_a_council_user_still_signs_in(app: FastAPI) -> None:
    """The same door opens for a permitted user: the refusals above are the firewall's."""
    async with app.state.pool.acquire() as conn:
        await passwords.set_password(conn, "lbh-dm1", PASSWORD)
    r = await sign_in(app, {"user_id": "lbh-dm1", "password": PASSWORD})
    assert r.status_code == 303 and "gh_session=" in r.headers.get("set-cookie", "")
