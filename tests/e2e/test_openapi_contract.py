"""The OpenAPI schema is the contract: a fuzzer generates requests from /openapi.json, sends them
to the running system, and every answer must be one the schema names, in the shape it names.

Every check is on, with and without API keys (several users, so the authorised paths are walked
too), a bounded number of examples per operation, and a fixed seed so a red run means a change
broke the contract, not that the search got lucky.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from goldenhour.dev.devsystem import DevSystem
from tests.e2e.helpers import SystemSetup, place_high_risk_child, report_absence

EXAMPLES = 8
SEED = 20260413

# POST /events: the schema states each event type's fields, but not the rules that need the
# server (an occurred_at no later than the server's clock allows, a child the record knows), so
# a well-formed event may rightly be refused with 422 there.
CONFIG = """
[[operations]]
include-path = "/api/v1/events"
include-method = "POST"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# The rota routes: the schema states each field, but not the rules across them or against the
# record (a range in order and not past, a person of the rota's role, no clash with a live
# change), so a well-formed request may rightly be refused with 422 there too.
[[operations]]
include-path-regex = "^/api/v1/rotas/"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# The figures: a range in order and at most five years long, and an authority the directory
# knows, are rules the schema cannot state.
[[operations]]
include-path-regex = "^/api/v1/figures$"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "422", "429"]
"""


async def _with_an_alert(system: DevSystem) -> None:
    """A child with an alert: some generated ids and reads then meet real rows."""
    await place_high_risk_child(system)
    await report_absence(system)


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="contract", prepare=_with_an_alert)


def fuzz(system: DevSystem, tmp: Path, key: str | None) -> subprocess.CompletedProcess:
    """One schemathesis run over every operation, as one caller (None: no key at all)."""
    config = tmp / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{system.api_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--suppress-health-check",
        "all",
    ]
    if key is not None:
        command += ["--header", f"Authorization: Bearer {key}"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )


def requests_made(output: str) -> int:
    """The number of requests the run reports having sent."""
    found = re.search(r"Test cases:\s*(\d+) generated", output)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("user", [None, "lbh-dm1", "oak-staff1", "mps-cr1", "lbi-dm1"])
async def test_every_answer_is_one_the_schema_names(
    system: DevSystem, tmp_path: Path, user: str | None
) -> None:
    done = fuzz(system, tmp_path, system.keys[user] if user else None)
    made = requests_made(done.stdout)
    print(f"schemathesis as {user or 'no key'}: {made} generated requests")
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    assert made > 0, done.stdout


async def test_html_pages_and_metrics_are_not_operations(system: DevSystem) -> None:
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        spec = (await c.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert not {p for p in paths if p.startswith(("/console", "/ack"))}
    assert "/metrics" not in paths and "/" not in paths
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                types = set(answer.get("content", {}))
                assert "text/html" not in types, (method, path, code)


async def test_every_error_is_documented_with_the_one_error_body(system: DevSystem) -> None:
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        spec = (await c.get("/openapi.json")).json()
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if int(code) < 400:
                    continue
                schema = answer["content"]["application/json"]["schema"]
                if path == "/readyz":
                    continue  # not ready answers the reasons, not an error
                assert schema == {"$ref": error_ref}, (method, path, code, schema)
            if operation.get("security"):
                assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)


async def test_the_schema_states_the_digit_rule_of_a_case_reference(system: DevSystem) -> None:
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        spec = (await c.get("/openapi.json")).json()
        refused = await c.get(
            "/api/v1/children/Amina",
            headers={"Authorization": f"Bearer {system.keys['lbh-dm1']}"},
        )
    (param,) = spec["paths"]["/api/v1/children/{child_id}"]["get"]["parameters"]
    pattern = re.compile(param["schema"]["pattern"])
    assert pattern.match("LBH-2026-0042") and not pattern.match("Amina")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["path", "child_id"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/nowhere", 404),
        ("put", "/api/v1/events", 405),
        ("delete", "/api/v1/alerts", 405),
    ],
)
async def test_the_router_answers_in_the_same_shape(
    system: DevSystem, method: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        r = await c.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert isinstance(r.json()["detail"], str)


async def test_an_unparsable_subscription_body_is_422_not_400(system: DevSystem) -> None:
    async with system.client("lbh-dm1") as c:
        for body in (b"{not json", b"\xff\xfe\x00garbage"):
            r = await c.post(
                "/subscriptions", content=body, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 422, (body, r.status_code, r.text)
            assert r.json()["detail"][0]["loc"][0] == "body"
