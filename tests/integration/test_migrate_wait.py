"""GOLDENHOUR_MIGRATE=wait: a part never migrates; it waits for the schema, and is ready once
the one-shot `goldenhour migrate` job has brought the database up to date."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from goldenhour.dev.london import directory
from goldenhour.dev.servers import die_with_parent, free_port, terminate
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import applied_versions, expected_versions
from tests.integration.test_api_readiness import ready, readyz_until

ROOT = Path(__file__).resolve().parents[2]


def part_env(stack: EmbeddedStack, dsn: str, tmp_path: Path) -> dict[str, str]:
    config, _ = directory()
    config_path = tmp_path / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {
        **os.environ,
        "GOLDENHOUR_CONFIG": str(config_path),
        "GOLDENHOUR_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "GOLDENHOUR_DATABASE_URL": dsn,
        "GOLDENHOUR_API_PORT": str(free_port()),
        "GOLDENHOUR_TOPIC_PREFIX": f"gh-{uuid.uuid4().hex[:8]}",
        "GOLDENHOUR_TWILIO_ENABLED": "false",
        "GOLDENHOUR_MIGRATE": "wait",
        "TMPDIR": str(tmp_path),
    }


@pytest.fixture
def waiting_api(stack: EmbeddedStack, database_url: str, tmp_path: Path) -> Iterator[tuple]:
    """The API started in `wait` mode on a database never migrated: (env, its log). Always
    stopped, by its PID."""
    env = part_env(stack, database_url, tmp_path)
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "goldenhour", "api"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    try:
        yield env, log, proc
    finally:
        terminate(proc, [signal.SIGTERM, signal.SIGKILL], timeout=10.0)


async def tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [r["tablename"] for r in rows]
    finally:
        await conn.close()


async def test_a_waiting_part_creates_no_schema_and_is_ready_once_migrate_ran(
    waiting_api: tuple, database_url: str
) -> None:
    env, log, proc = waiting_api

    def waiting() -> bool:
        assert proc.poll() is None, log.read_text()
        return "db.waiting_for_schema" in log.read_text()

    await eventually(waiting, 60, "the API to say it waits for the schema", every=0.1)
    # It looked at the database and found it empty; it must not have migrated it itself.
    assert await applied_versions(database_url) == set()
    assert await tables(database_url) == []
    assert proc.poll() is None

    job = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "goldenhour", "migrate"],
        cwd=ROOT,
        env={k: v for k, v in env.items() if k != "GOLDENHOUR_MIGRATE"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr
    assert expected_versions()[-1] in job.stdout

    url = f"http://127.0.0.1:{env['GOLDENHOUR_API_PORT']}"
    await readyz_until(url, ready, 60, "the API ready once the schema is there")
    assert "db.schema_ready" in log.read_text()
    assert await applied_versions(database_url) == set(expected_versions())
