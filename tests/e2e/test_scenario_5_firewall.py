"""Acceptance scenario 5: an immigration-enforcement organisation in the directory is refused at
start; its key, if any, reads nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest
import yaml
from fastapi import Depends, FastAPI

from goldenhour.contracts.config import GoldenHourConfig, hash_api_key
from goldenhour.dev.london import directory
from goldenhour.services.auth import Caller, authenticate
from tests.e2e.helpers import sneak_key_in

HOIE = {
    "code": "HOIE",
    "kind": "immigration_enforcement",
    "name": "Immigration Enforcement",
    "users": [{"id": "hoie-1", "roles": ["admin"], "api_key_sha256": hash_api_key("hoie-key")}],
}


@pytest.mark.parametrize("part", ["api", "streams", "dispatcher", "run"])
def test_every_part_refuses_to_start_with_it_in_the_directory(tmp_path, part):
    config = directory()[0]
    config["organisations"].append(HOIE)
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "GOLDENHOUR_CONFIG": str(path),
        "GOLDENHOUR_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "GOLDENHOUR_DATABASE_URL": "postgresql://x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "goldenhour", part],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "HOIE" in done.stderr and "immigration_enforcement" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("as_neighbour", [True, False])
def test_it_cannot_even_be_named_as_a_neighbour_or_police(tmp_path, as_neighbour):
    config = directory()[0]
    config["organisations"].append({"code": "HOIE", "kind": "immigration_enforcement"})
    lbh = next(o for o in config["organisations"] if o["code"] == "LBH")
    if as_neighbour:
        lbh["neighbours"].append("HOIE")
    else:
        lbh["police"] = "HOIE"
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(config))
    from goldenhour.contracts.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="HOIE"):
        load_config(path)


async def test_a_key_that_slipped_in_reads_nothing():
    """Were the directory check ever bypassed, the key still gets 403 on every route."""
    config = GoldenHourConfig.model_validate(directory()[0])
    sneak_key_in(config)
    app = FastAPI()
    app.state.config = config

    @app.get("/api/v1/children/{child_id}")
    async def read(child_id: str, caller: Caller = Depends(authenticate)) -> dict:
        return {"read": child_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get(
            "/api/v1/children/LBH-2026-0042", headers={"Authorization": "Bearer hoie-key"}
        )
    assert r.status_code == 403
    assert "LBH-2026-0042" not in r.text


async def test_every_route_that_reads_or_writes_child_data_refuses_it(tmp_path):
    """The real application's routes, each called with such a key: 403 before anything is read
    (no database behind this app: a route that got further would fail differently)."""
    from goldenhour.infra.settings import Settings
    from goldenhour.services.app import create_app

    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(directory()[0]))
    settings = Settings.model_validate(
        {
            "GOLDENHOUR_CONFIG": str(path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "GOLDENHOUR_DATABASE_URL": "postgresql://nowhere",
        }
    )
    app = create_app(settings)
    config = app.state.config
    sneak_key_in(config)
    open_routes = {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/webhooks/twilio/status",
        "/api/v1/webhooks/twilio/inbound",
    }
    checked = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for path_, operations in app.openapi()["paths"].items():
            if not path_.startswith("/api/") or path_ in open_routes:
                continue
            url = re.sub(r"\{child_id\}", "LBH-2026-0042", path_)
            url = re.sub(r"\{[a-z_]+\}", "7b0e4c1e-2f57-4a0e-9a53-1c0f3f6b2a10", url)
            for method in operations:
                r = await c.request(
                    method.upper(),
                    url,
                    headers={"Authorization": "Bearer hoie-key"},
                    json={} if method in ("post", "put") else None,
                )
                assert r.status_code == 403, (method, url, r.status_code, r.text)
                checked.append((method, path_))
    assert len(checked) >= 8  # events, alerts (3), children, subscriptions (3), shared alerts (2)
