"""GOLDENHOUR_HEALTH_PORT on the API: /healthz, /readyz and /metrics on a port of their own, and
/metrics gone from the public port, so no ingress in front of it can expose the counts."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from goldenhour.dev.london import directory
from goldenhour.dev.parts import PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.stack import EmbeddedStack
from tests.integration.test_api_readiness import ready, readyz_until

TOKEN = "metrics-token-of-the-health-port-test"


@pytest.fixture
async def api_ports(
    stack: EmbeddedStack, migrated_db: str, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    """The API as its own process with a health port: (public URL, health URL). Always
    stopped, by its PID."""
    config, _ = directory()
    config_path = tmp_path / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    public, health = free_port(), free_port()
    env = {
        **os.environ,
        "GOLDENHOUR_CONFIG": str(config_path),
        "GOLDENHOUR_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "GOLDENHOUR_DATABASE_URL": migrated_db,
        "GOLDENHOUR_API_PORT": str(public),
        "GOLDENHOUR_HEALTH_PORT": str(health),
        "GOLDENHOUR_HEALTH_HOST": "127.0.0.1",
        "GOLDENHOUR_TOPIC_PREFIX": f"gh-{uuid.uuid4().hex[:8]}",
        "GOLDENHOUR_METRICS_TOKEN": TOKEN,
        "GOLDENHOUR_TWILIO_ENABLED": "false",
        "TMPDIR": str(tmp_path),
    }
    part = PartProcess("api", env).start()
    try:
        yield f"http://127.0.0.1:{public}", f"http://127.0.0.1:{health}"
    finally:
        await asyncio.to_thread(part.stop)


async def test_the_health_port_serves_probes_and_metrics_and_the_public_port_no_metrics(
    api_ports: tuple[str, str],
) -> None:
    public, health = api_ports
    _, body = await readyz_until(health, lambda s, b: s == 200, 60, "the health port ready")
    assert body == {"status": "ready"}
    await readyz_until(public, ready, 30, "the public port ready")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=5.0) as client:
        assert (await client.get(f"{health}/healthz")).json() == {"status": "ok"}
        scraped = await client.get(f"{health}/metrics", headers=bearer)
        assert scraped.status_code == 200
        assert "goldenhour_outbox_relay_active 1.0" in scraped.text
        assert "goldenhour_dead_letters" in scraped.text
        assert (await client.get(f"{health}/metrics")).status_code == 401
        # The public port: probes still answer, metrics are not there even with the token.
        assert (await client.get(f"{public}/healthz")).status_code == 200
        hidden = await client.get(f"{public}/metrics", headers=bearer)
        assert hidden.status_code == 404
        assert "goldenhour_" not in hidden.text
