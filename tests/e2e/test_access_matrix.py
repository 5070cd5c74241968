"""The authorisation matrix: every route of the API and the console, called by every kind of
organisation and role, about its own child, a neighbour's child and a stranger's child, against
the running system. The expected answers are one table of rules, in `access_rules.py`; a route
without a rule fails the test, so a new route cannot ship without saying who may use it.

An immigration-enforcement key cannot be in a running system's directory (every part refuses
to start), so its rows run against the real application in this process, over the same
database, with the key slipped in as a bypassed check would let it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio
import yaml
from fastapi.routing import iter_route_contexts

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory, event
from goldenhour.infra.db import create_pool
from goldenhour.infra.settings import Settings
from goldenhour.services.app import create_app
from goldenhour.services.console import sessions
from tests.e2e.access_rules import (
    API,
    BARE,
    CHILDREN,
    EVENTS,
    FIREWALL_PAGE_STATUS,
    MATRIX,
    PAGE,
    PEOPLE,
    Who,
    matrix_directory,
    raise_alert,
    sees,
)
from tests.e2e.console_client import Console
from tests.e2e.helpers import SystemSetup, running_system, sneak_key_in


@dataclass
class World:
    system: DevSystem
    alerts: dict[str, uuid.UUID]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(stack) -> AsyncIterator[World]:
    async with running_system(stack, SystemSetup("matrix", matrix_directory)) as s:
        yield World(s, {child: await raise_alert(s, child) for child in CHILDREN})


# --- calling one cell -----------------------------------------------------------------------


def _url(path: str, world: World, child: str) -> str:
    return (
        path.replace("{alert_id}", str(world.alerts[child]))
        .replace("{child_id}", child)
        .replace("{subscription_id}", str(uuid.uuid4()))
        .replace("{shared_id}", str(uuid.uuid4()))
        .replace("{rota_id}", "lbh-duty-rota")
        .replace("{change_id}", str(uuid.uuid4()))
        .replace("{kind}", "checkin")
        .replace("{token}", "forged-token")
    )


def _api_body(method: str, path: str, child: str) -> dict | None:
    if path == "/api/v1/events":
        return event(
            "checkin.recorded",
            child,
            {"placement_id": f"{child}-P1", "seen_at": datetime.now(UTC).isoformat()},
        )
    if path == "/api/v1/subscriptions" and method == "POST":
        return {"source_authorities": ["LBH"], "deliver": {"webhook_url": "http://127.0.0.1:9/h"}}
    if path.startswith("/api/v1/rotas/") and method == "POST":
        # A week of its own far ahead for each change, so that no two clash.
        start = datetime(2030, 1, 7, 9, tzinfo=UTC) + timedelta(weeks=next(_WEEKS))
        end = (start + timedelta(hours=8)).isoformat()
        if path.endswith("/overrides"):
            return {"action": "add", "member": "lbh-edt-2", "start": start.isoformat(), "end": end}
        if path.endswith("/temporary"):
            shift = {"start": start.isoformat(), "end": end, "member": "lbh-edt-2"}
            return {"start": start.isoformat(), "end": end, "shifts": [shift]}
        if path.endswith("/swaps"):
            return {"member": "lbh-duty", "shift_start": (start + timedelta(minutes=7)).isoformat()}
        return {"by": "lbh-edt-2"}
    return None


_WEEKS = itertools.count()


def _form(path: str, child: str) -> dict[str, str]:
    if path.endswith("/located"):
        return {"status": "not-a-status", "location": "home"}
    if path == "/console/care/{kind}":
        return {"child_id": child, "event_id": str(uuid.uuid4())}
    return {}


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    url: str,
    json: dict | None = None,
    data: dict | None = None,
) -> int:
    if path == "/console/board/events":
        async with client.stream(method, url) as r:
            return r.status_code
    r = await client.request(method, url, json=json, data=data)
    return r.status_code


async def page_status(console: Console, method: str, path: str, url: str, child: str) -> int:
    if method == "GET":
        if path == "/console/board/events":
            async with console.client() as c:
                return await call(c, method, path, url)
        return (await console.get(url)).status_code
    return (await console.post(url, _form(path, child))).status_code


# --- the tests ------------------------------------------------------------------------------


def declared_routes(tmp_path) -> set[tuple[str, str]]:
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(directory()[0]))
    app = create_app(_settings(str(path)))
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def _settings(config_path: str, **env: str) -> Settings:
    return Settings.model_validate(
        {
            "GOLDENHOUR_CONFIG": config_path,
            "GOLDENHOUR_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "GOLDENHOUR_DATABASE_URL": "postgresql://nowhere",
            **env,
        }
    )


def test_every_route_has_a_row(tmp_path) -> None:
    routes = declared_routes(tmp_path)
    assert routes - set(MATRIX) == set(), "routes without a row in the matrix"
    assert set(MATRIX) - routes == set(), "rows for routes that no longer exist"


# Sign-out ends the session the other console rows use: it runs last for each person.
ORDER = sorted(MATRIX, key=lambda row: row == ("POST", "/console/logout"))


PERSON = pytest.mark.parametrize("who", PEOPLE, ids=lambda w: f"{w.kind}-{w.role}-{w.user}")


@PERSON
async def test_every_route_answers_each_person_as_the_rules_say(world: World, who: Who) -> None:
    system = world.system
    console = Console(system)
    await console.get("/console/login")
    signed_in = await console.post("/console/login", {"api_key": system.keys[who.user]})
    assert signed_in.status_code == 303, signed_in.text
    await console.get("/console")  # the session's CSRF token
    wrong = []
    async with system.client(who.user) as api, httpx.AsyncClient(base_url=system.api_url) as bare:
        api.base_url = system.api_url  # paths in the table are absolute
        for method, path in ORDER:
            how, rule = MATRIX[(method, path)]
            for child in CHILDREN:
                expected = rule(who, child)
                url = _url(path, world, child)
                if how == API:
                    got = await call(api, method, path, url, json=_api_body(method, path, child))
                elif how == PAGE:
                    got = await page_status(console, method, path, url, child)
                elif path == "/console/login":
                    fresh = Console(system)
                    await fresh.get("/console/login")
                    got = (await fresh.post(url, {"api_key": system.keys[who.user]})).status_code
                else:
                    got = await call(bare, method, path, url)
                if got != expected:
                    wrong.append(f"{method} {path} about {child}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


@PERSON
async def test_lists_hold_only_the_children_the_person_may_see(world: World, who: Who) -> None:
    visible = {child for child in CHILDREN if sees(who, child)}
    async with world.system.client(who.user) as api:
        listed = (await api.get("/alerts", params={"status": "all"})).json()
    assert {a["child_id"] for a in listed} == visible
    console = Console(world.system)
    await console.get("/console/login")
    await console.post("/console/login", {"api_key": world.system.keys[who.user]})
    board = await console.get("/console", params={"status": "all"})
    assert board.status_code == 200
    assert {child for child in CHILDREN if child in board.text} == visible


async def test_an_immigration_enforcement_key_or_session_gets_nothing_anywhere(
    world: World, tmp_path
) -> None:
    """The real application over the same database, the key slipped past the directory."""
    system = world.system
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(system.config))
    env = {k: v for k, v in system.env.items() if k.startswith(("GOLDENHOUR_", "TWILIO_", "SMTP_"))}
    app = create_app(Settings.model_validate({**env, "GOLDENHOUR_CONFIG": str(path)}))
    sneak_key_in(app.state.config)
    app.state.pool = await create_pool(system.database_url, min_size=1, max_size=4)
    # A session for the user, as if one had been written before the directory check.
    token = await sessions.start(
        app.state.pool,
        sessions.Caller(*app.state.config.user_for_key_hash(hash_api_key("hoie-key"))),
        timedelta(hours=1),
        datetime.now(UTC),
    )
    wrong = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for method, route in sorted(MATRIX):
                how, _ = MATRIX[(method, route)]
                if how == BARE and route != "/console/login":
                    continue  # takes no credential: the key changes nothing
                for child in CHILDREN:
                    url = _url(route, world, child)
                    if route == "/console/login" and method == "POST":
                        form = {"api_key": "hoie-key", "csrf_token": "t"}
                        r = await c.post(
                            url, data=form, headers={"Cookie": f"{sessions.LOGIN_CSRF_COOKIE}=t"}
                        )
                    elif how == PAGE:
                        r = await c.request(
                            method,
                            url,
                            data=_form(route, child) if method == "POST" else None,
                            headers={"Cookie": f"{sessions.COOKIE}={token}"},
                        )
                    else:
                        r = await c.request(
                            method,
                            url,
                            json=_api_body(method, route, child),
                            headers={"Authorization": "Bearer hoie-key"},
                        )
                    expected = FIREWALL_PAGE_STATUS.get(
                        (method, route), 303 if how == PAGE else 403
                    )
                    if route == "/metrics":
                        expected = 401  # not the metrics token, whoever holds it
                    if r.status_code != expected or child in r.text:
                        wrong.append(f"{method} {route}: {r.status_code}, expected {expected}")
    finally:
        await app.state.pool.close()
    assert not wrong, "\n".join(wrong)


# --- events that contradict the record ------------------------------------------------------


@PERSON
async def test_events_that_contradict_the_record_change_nothing(world: World, who: Who) -> None:
    """Run after the routes: were a refusal missing, these would move children about."""
    conn = await asyncpg.connect(world.system.database_url)
    try:
        before = await conn.fetch("SELECT * FROM placements ORDER BY placement_id")
        children = await conn.fetch("SELECT child_id, local_authority, risk_level FROM children")
    finally:
        await conn.close()
    wrong = []
    async with world.system.client(who.user) as api:
        for name, (body, rule) in EVENTS.items():
            for child in CHILDREN:
                r = await api.post("/events", json=body(child))
                if r.status_code != rule(who, child):
                    wrong.append(
                        f"{name} about {child}: {r.status_code}, expected {rule(who, child)}"
                    )
    conn = await asyncpg.connect(world.system.database_url)
    try:
        assert await conn.fetch("SELECT * FROM placements ORDER BY placement_id") == before
        after = await conn.fetch("SELECT child_id, local_authority, risk_level FROM children")
        assert sorted(map(tuple, after)) == sorted(map(tuple, children))
    finally:
        await conn.close()
    assert not wrong, "\n".join(wrong)
