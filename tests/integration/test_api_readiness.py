"""The API's /readyz tells the truth: 503, with the reason, while the process cannot make
progress (database or broker unreachable, no active relay anywhere, a required part without a
worker holding its partitions), and ready again once it can. Each test runs the API as its own
process over a broker and database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import httpx
import yaml

from goldenhour.dev.london import IDENTIFIED, directory, event
from goldenhour.dev.parts import PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.services.outbox import _RELAY_LOCK

Body = dict


METRICS_TOKEN = "metrics-token-of-the-readiness-tests"


@contextlib.asynccontextmanager
async def api(
    stack: EmbeddedStack,
    dsn: str,
    tmp_path: Path,
    ready_requires: str = "",
    keys: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """The API as its own process; its base URL (and the users' keys in `keys`). Always
    stopped, by its PID."""
    config, made = directory()
    if keys is not None:
        keys.update(made)
    config_path = tmp_path / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    env = {
        **os.environ,
        "GOLDENHOUR_CONFIG": str(config_path),
        "GOLDENHOUR_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "GOLDENHOUR_DATABASE_URL": dsn,
        "GOLDENHOUR_API_PORT": str(port),
        "GOLDENHOUR_TOPIC_PREFIX": f"gh-{uuid.uuid4().hex[:8]}",
        "GOLDENHOUR_READY_REQUIRES": ready_requires,
        "GOLDENHOUR_METRICS_TOKEN": METRICS_TOKEN,
        # The readiness tests send nothing: no Twilio credentials, so Twilio explicitly off.
        "GOLDENHOUR_TWILIO_ENABLED": "false",
        "TMPDIR": str(tmp_path),
    }
    part = PartProcess("api", env).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(part.stop)


async def readyz_until(
    url: str, want: Callable[[int, Body], bool], timeout: float, what: str
) -> tuple[int, Body]:
    """Poll /readyz until its answer is the one wanted; that answer."""
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def answer() -> tuple[int, Body]:
            try:
                r = await client.get(f"{url}/readyz")
            except httpx.HTTPError as exc:  # not answering yet
                raise AssertionError(repr(exc)) from exc
            seen = (r.status_code, r.json())
            assert want(*seen), seen
            return seen

        return await eventually(answer, timeout, what, every=0.2)


def ready(status: int, body: Body) -> bool:
    return status == 200 and body["status"] == "ready" and body["outbox_relay_active"]


def unavailable_for(*reasons: str, only: bool = False) -> Callable[[int, Body], bool]:
    """A 503 naming these reasons (`only`: and no other)."""

    def want(status: int, body: Body) -> bool:
        named = set(body) - {"status", "outbox_relay_active"}
        return (
            status == 503
            and body["status"] == "unavailable"
            and (named == set(reasons) if only else set(reasons) <= named)
        )

    return want


async def test_503_while_postgres_is_stopped_and_ready_once_it_is_back(
    own_stack: EmbeddedStack, own_db: str, tmp_path: Path
) -> None:
    async with api(own_stack, own_db, tmp_path) as url:
        await readyz_until(url, ready, 60, "ready")
        await asyncio.to_thread(own_stack.stop_postgres)
        try:
            _, body = await readyz_until(url, unavailable_for("database"), 20, "503 database")
            assert "unreachable" in body["database"]
        finally:
            await asyncio.to_thread(own_stack.start_postgres)
        await readyz_until(url, ready, 30, "ready after the outage")


async def test_503_while_the_broker_is_paused_and_ready_once_it_resumes(
    own_stack: EmbeddedStack, own_db: str, tmp_path: Path
) -> None:
    async with api(own_stack, own_db, tmp_path) as url:
        await readyz_until(url, ready, 60, "ready")
        own_stack.signal("tansu", signal.SIGSTOP)
        try:
            _, body = await readyz_until(
                url, unavailable_for("broker", only=True), 20, "503 for the broker alone"
            )
            assert "unreachable" in body["broker"]
        finally:
            own_stack.signal("tansu", signal.SIGCONT)
        await readyz_until(url, ready, 45, "ready after the pause")


async def test_503_while_no_relay_is_active_anywhere(
    own_stack: EmbeddedStack, own_db: str, tmp_path: Path
) -> None:
    # Another holder of the relay's lock that never relays (nor beats): a relay hung elsewhere.
    squatter = await asyncpg.connect(own_db)
    try:
        await squatter.execute("SELECT pg_advisory_lock($1)", _RELAY_LOCK)
        async with api(own_stack, own_db, tmp_path) as url:
            _, body = await readyz_until(
                url, unavailable_for("outbox_relay"), 60, "503 for the missing relay"
            )
            assert body["outbox_relay_active"] is False
            await squatter.close()
            await readyz_until(url, ready, 30, "ready once its relay takes the lock")
    finally:
        if not squatter.is_closed():
            await squatter.close()


async def test_ready_only_while_every_required_part_holds_its_partitions(
    own_stack: EmbeddedStack, own_db: str, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(own_db, min_size=1, max_size=2)
    beating = {"streams": True, "dispatcher": True}

    async def beat() -> None:
        # Workers as the streams and dispatcher parts announce themselves, by the database clock.
        while True:
            for part, alive in beating.items():
                if alive:
                    await pool.execute(
                        "INSERT INTO worker_readiness (part, pid, host) VALUES ($1, 1, 'w')"
                        " ON CONFLICT (part, host, pid) DO UPDATE SET beat_at = now()",
                        part,
                    )
            await asyncio.sleep(1.0)

    try:
        async with api(own_stack, own_db, tmp_path, ready_requires="streams,dispatcher") as url:
            await readyz_until(
                url, unavailable_for("streams", "dispatcher", only=True), 60, "503 naming both"
            )
            beater = asyncio.create_task(beat())
            try:
                await readyz_until(url, ready, 30, "ready with both parts beating")
                # Dead letters are a metric for operators, never a reason to refuse traffic.
                await pool.execute(
                    "INSERT INTO dead_letters (consumer, topic, raw, reason, error)"
                    " VALUES ('streams.golden_hour_clock', 'intake', 'x', 'parse', 'bad json')"
                )
                async with httpx.AsyncClient(timeout=5.0) as client:
                    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
                    metrics = (await client.get(f"{url}/metrics", headers=bearer)).text
                    assert "goldenhour_dead_letters_open 1.0" in metrics
                    assert (await client.get(f"{url}/readyz")).status_code == 200
                beating["streams"] = False  # its worker stopped: its beat goes stale
                await readyz_until(
                    url, unavailable_for("streams", only=True), 30, "503 naming streams alone"
                )
            finally:
                beater.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beater
    finally:
        await pool.close()


async def test_an_api_started_while_postgres_is_down_waits_and_refuses_with_503(
    own_stack: EmbeddedStack, own_db: str, tmp_path: Path
) -> None:
    # Started with the database down, the API waits for it instead of exiting (a supervisor
    # would count that as a crash and, after a few, give up on the whole system).
    keys: dict[str, str] = {}
    await asyncio.to_thread(own_stack.stop_postgres)
    try:
        async with api(own_stack, own_db, tmp_path, keys=keys) as url:
            await asyncio.sleep(3)
            await asyncio.to_thread(own_stack.start_postgres)
            await readyz_until(url, ready, 60, "ready once the database started")
            # A report while the database is gone: 503 with Retry-After, never a 500.
            await asyncio.to_thread(own_stack.stop_postgres)
            headers = {"Authorization": f"Bearer {keys['lbh-dm1']}"}
            body = event("child.identified", "LBH-2026-0777", IDENTIFIED)
            async with httpx.AsyncClient(timeout=30.0) as client:
                r = await client.post(f"{url}/api/v1/events", json=body, headers=headers)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"]
            await asyncio.to_thread(own_stack.start_postgres)
            await readyz_until(url, ready, 60, "ready again")
            async with httpx.AsyncClient(timeout=30.0) as client:
                r = await client.post(f"{url}/api/v1/events", json=body, headers=headers)
            assert r.status_code == 202, r.text  # the same event id: nothing was half-written
    finally:
        await asyncio.to_thread(own_stack.start_postgres)
