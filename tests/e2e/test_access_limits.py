"""The limits in front of the API on the running system: sign-in under a burst, whose address
counts behind a proxy, sessions that end, large bodies, per-key rates and the metrics token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, event
from tests.e2e.console_client import PASSWORD, Console, run_set_password, set_password
from tests.e2e.helpers import SystemSetup, fetch, running_system

MB = 1024 * 1024
PROXY_CLIENT = "203.0.113.9"  # a documentation address: the client a proxy names


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    """The system as tests run it: no trusted proxy."""
    return SystemSetup(name="limits", passwords=("lbh-dm1", "lbh-sw1", "mps-cr1"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def proxied(stack) -> AsyncIterator[DevSystem]:
    """Behind a trusted proxy on 127.0.0.1, with a low per-key rate."""
    behind_a_proxy = SystemSetup(
        name="limits",
        env={"GOLDENHOUR_TRUSTED_PROXIES": "127.0.0.1", "GOLDENHOUR_API_RATE_LIMIT": "5/minute"},
        passwords=("lbh-sw1",),
    )
    async with running_system(stack, behind_a_proxy) as s:
        yield s


async def failure_keys(system: DevSystem) -> list[str]:
    return [r["key"] for r in await fetch(system, "SELECT key FROM login_failures ORDER BY id")]


async def _sign_in_from(
    system: DevSystem, client_address: str, password: str, user: str = "lbh-sw1"
) -> int:
    """A console sign-in whose X-Forwarded-For names `client_address`; the answer's status."""
    console = Console(system)
    await console.get("/console/login")
    async with console.client() as c:
        r = await c.post(
            "/console/login",
            data={"user_id": user, "password": password, "csrf_token": console.csrf},
            headers={"X-Forwarded-For": client_address},
        )
    return r.status_code


# --- sign-in ------------------------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_checks_at_most_the_limit(system: DevSystem) -> None:
    """60 wrong passwords at once for one user: every attempt is recorded before its password is
    checked, so no more than the limit (5) are ever checked; /healthz answers meanwhile."""
    console = Console(system)
    await console.get("/console/login")
    form = {"user_id": "lbh-sw1", "password": "wrong password, guessed", "csrf_token": console.csrf}
    health_waits: list[float] = []
    burst_done = asyncio.Event()

    async def one_attempt(c: httpx.AsyncClient) -> int:
        return (await c.post("/console/login", data=form)).status_code

    async def probe_health() -> None:
        async with httpx.AsyncClient(base_url=system.api_url, timeout=30) as c:
            while not burst_done.is_set():
                began = time.monotonic()
                r = await c.get("/healthz")
                assert r.status_code == 200
                health_waits.append(time.monotonic() - began)
                await asyncio.sleep(0.02)

    async with console.client() as c:
        c.timeout = httpx.Timeout(60)
        probe = asyncio.create_task(probe_health())
        answers = await asyncio.gather(*(one_attempt(c) for _ in range(60)))
        burst_done.set()
        await probe

    assert set(answers) <= {401, 429}, answers
    checked = [k for k in await failure_keys(system) if k.startswith("user:lbh-sw1@")]
    assert 1 <= len(checked) <= 5, f"{len(checked)} passwords checked against a limit of 5"
    assert answers.count(401) == len(checked)
    assert health_waits, "/healthz never answered during the burst"
    print(
        f"/healthz during the burst: {len(health_waits)} answers, slowest {max(health_waits):.3f}s"
    )


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(system: DevSystem) -> None:
    assert await _sign_in_from(system, PROXY_CLIENT, "x" * 12, user="lbh-dm1") == 401
    keys = await failure_keys(system)
    assert f"addr:{PROXY_CLIENT}" not in keys
    assert "addr:127.0.0.1" in keys


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(proxied: DevSystem) -> None:
    """Behind the office's proxy, each client is counted on its own: one attacker's failures
    do not lock out everyone else behind it."""
    assert await _sign_in_from(proxied, PROXY_CLIENT, "x" * 12) == 401
    keys = await failure_keys(proxied)
    assert f"addr:{PROXY_CLIENT}" in keys
    assert "addr:127.0.0.1" not in keys


async def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere(
    proxied: DevSystem,
) -> None:
    """An attacker who knows a duty manager's user name locks only their own address out; the
    duty manager signs in from theirs, and an administrator's new password lifts the lock."""
    attacker, office = "203.0.113.66", "203.0.113.77"
    for _ in range(5):
        assert await _sign_in_from(proxied, attacker, "x" * 12) == 401
    assert await _sign_in_from(proxied, attacker, PASSWORD) == 429
    assert await _sign_in_from(proxied, office, PASSWORD) == 303
    set_password(proxied, "lbh-sw1")
    assert await _sign_in_from(proxied, attacker, PASSWORD) == 303


async def test_a_session_ends_when_it_expires(system: DevSystem) -> None:
    console = Console(system)
    assert (await console.sign_in("mps-cr1")).status_code == 303
    assert (await console.get("/console")).status_code == 200
    await fetch(
        system,
        "UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        "mps-cr1",
    )
    r = await console.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


async def test_a_new_password_signs_the_user_out_everywhere(system: DevSystem) -> None:
    office, phone = Console(system), Console(system)
    for browser in (office, phone):
        assert (await browser.sign_in("lbh-dm1")).status_code == 303
        assert (await browser.get("/console")).status_code == 200
    done = run_set_password(system, "lbh-dm1", PASSWORD + " renewed")
    assert done.returncode == 0, done.stderr
    for browser in (office, phone):
        r = await browser.get("/console")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    assert (await Console(system).sign_in("lbh-dm1", PASSWORD + " renewed")).status_code == 303


# --- bodies -------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_a_large_chunked_body_is_refused_without_being_read(system: DevSystem) -> None:
    """60 MB sent chunked (no Content-Length): 413 once the cap is crossed, and the API does
    not hold the body in memory."""
    pid = system.parts["api"].pid
    before = rss_kb(pid)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"x" * (256 * 1024)
        for _ in range(60 * MB // len(chunk)):
            sent += len(chunk)
            yield chunk

    async with system.client("lbh-dm1") as c:
        c.timeout = httpx.Timeout(60)
        r = await c.post("/events", content=body(), headers={"Content-Type": "application/json"})
    grown_kb = rss_kb(pid) - before
    print(f"API RSS grew by {grown_kb} KiB while {sent // MB} MB were sent")
    assert r.status_code == 413, r.text
    assert "bytes" in r.json()["detail"]
    assert grown_kb < 16 * 1024


async def test_the_413_comes_before_the_body_is_sent_whole(system: DevSystem) -> None:
    """1 MB of a chunked body sent, the rest held back: the answer is already there."""
    host, port = system.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/events HTTP/1.1\r\nHost: gh\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {system.keys['lbh-dm1']}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * (64 * 1024)
        for _ in range(16):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


async def test_a_declared_large_body_is_refused_at_once(system: DevSystem) -> None:
    async with system.client("lbh-dm1") as c:
        r = await c.post(
            "/events",
            content=b"{" + b" " * (2 * MB) + b"}",
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413
    assert "65536 bytes" in r.json()["detail"]


async def test_a_body_under_the_cap_is_accepted(system: DevSystem) -> None:
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    async with system.client("lbh-dm1") as c:
        r = await c.post("/events", json=event("child.identified", child, IDENTIFIED))
    assert r.status_code == 202, r.text


# --- per-key rate -------------------------------------------------------------------------


async def test_a_key_over_its_rate_gets_429_and_another_key_does_not(proxied: DevSystem) -> None:
    async with proxied.client("mps-cr1") as police, proxied.client("lbh-dm1") as council:
        answers = [(await police.get("/alerts")).status_code for _ in range(5)]
        over = await police.get("/alerts")
        other = await council.get("/alerts")
    assert answers == [200] * 5
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert "too many requests" in over.json()["detail"]
    assert other.status_code == 200


# --- metrics ------------------------------------------------------------------------------


async def test_metrics_only_with_the_token(system: DevSystem) -> None:
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        anonymous = await c.get("/metrics")
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        key = await c.get("/metrics", headers={"Authorization": f"Bearer {system.keys['lbh-dm1']}"})
        scraper = await c.get("/metrics", headers=system.metrics_headers())
        schema = (await c.get("/openapi.json")).json()
    assert [anonymous.status_code, wrong.status_code, key.status_code] == [401, 401, 401]
    assert "goldenhour_" not in anonymous.text + wrong.text + key.text
    assert scraper.status_code == 200 and "goldenhour_events_accepted_total" in scraper.text
    assert "/metrics" not in schema["paths"]
