"""Who may subscribe to what, and where a webhook may point, against the running system.

Here the system runs as it does in production, with GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE=0, so the
server-side request forgery guard is on at the API itself. The directory is the dev one plus an
NGO (with an admin) and a police duty manager: neither is anyone's neighbour, so neither may
subscribe to Hackney's shared alerts, as the shared alerts feed would not show them either.
And when a webhook's receiver answers a failure, its owner's email carries the status code, never
what the receiver wrote back.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.london import directory
from goldenhour.dev.waiting import eventually
from goldenhour.dev.webhook_local import LocalWebhookReceiver
from tests.e2e.helpers import (
    SystemSetup,
    create_subscription,
    fetch,
    place_high_risk_child,
    report_absence,
    subscription_count,
)

PUBLIC_HOOK = "https://93.184.216.34/goldenhour/alerts"
LEAK = "internal-admin: AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def with_outsiders(config: dict, keys: dict[str, str]) -> None:
    """Add an NGO with an admin, and a duty manager at the police, to the dev directory."""

    def user(user_id: str, roles: list[str]) -> dict:
        keys[user_id] = f"gh_{secrets.token_urlsafe(24)}"
        return {"id": user_id, "roles": roles, "api_key_sha256": hash_api_key(keys[user_id])}

    config["organisations"].append(
        {
            "code": "NGO1",
            "kind": "ngo",
            "name": "Safe Passage Outreach",
            "users": [user("ngo-admin1", ["admin"])],
        }
    )
    mps = next(o for o in config["organisations"] if o["code"] == "MPS")
    mps["users"].append(user("mps-dm1", ["duty_manager"]))


def _directory() -> tuple[dict, dict]:
    config, keys = directory()
    with_outsiders(config, keys)
    return config, keys


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(
        name="subrules", directory=_directory, env={"GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE": "0"}
    )


@pytest.mark.parametrize("user, org", [("ngo-admin1", "NGO1"), ("mps-dm1", "MPS")])
@pytest.mark.parametrize(
    "deliver",
    [{"webhook_url": PUBLIC_HOOK}, {"contacts": [], "channels": [], "webhook_url": PUBLIC_HOOK}],
)
async def test_an_organisation_that_is_no_neighbour_may_not_subscribe(system, user, org, deliver):
    before = await subscription_count(system)
    r = await create_subscription(system, user, {"source_authorities": ["LBH"], "deliver": deliver})
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"source_authorities[0]: LBH does not list {org} as a neighbour")
    assert "may subscribe only to the shared alerts of authorities that list it" in detail
    assert await subscription_count(system) == before


async def test_the_entry_at_fault_is_named(system):
    body = {"source_authorities": ["LBI", "LBH"], "deliver": {"webhook_url": PUBLIC_HOOK}}
    r = await create_subscription(system, "mps-dm1", body)
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("source_authorities[0]: LBI does not list MPS")


async def test_a_neighbour_still_subscribes_and_a_public_webhook_is_accepted(system):
    r = await create_subscription(
        system, "lbi-dm1", {"source_authorities": ["LBH"], "deliver": {"webhook_url": PUBLIC_HOOK}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["source_authorities"] == ["LBH"] and r.json()["webhook_url"] == PUBLIC_HOOK


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://10.0.0.7/hook", "private"),
        ("http://[::1]:8080/hook", "loopback"),
    ],
)
async def test_a_webhook_to_a_non_public_address_is_refused_by_the_api(system, url, reason):
    before = await subscription_count(system)
    r = await create_subscription(system, "lbi-dm1", {"deliver": {"webhook_url": url}})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "deliver", "webhook_url"]
    assert f"is a {reason} address; webhooks go to public addresses only" in error["msg"]
    assert await subscription_count(system) == before


@pytest.fixture
async def leaky_receiver() -> AsyncIterator[LocalWebhookReceiver]:
    """A receiver that answers 403 with something internal in the body."""
    r = LocalWebhookReceiver()
    r.fail_next(50, 403, body=LEAK)
    await r.start()
    yield r
    await r.stop()


async def test_the_failure_email_carries_the_status_not_the_receivers_answer(
    start_system, leaky_receiver
):
    system = await start_system(scale=0.1, env={"GOLDENHOUR_WEBHOOK_MAX_FAILURES": "1"})
    r = await create_subscription(
        system, "lbi-dm1", {"deliver": {"webhook_url": leaky_receiver.url("/h")}}
    )
    assert r.status_code == 201, r.text
    leaky_receiver.set_secret(r.json()["webhook_secret"])
    await place_high_risk_child(system)
    await report_absence(system)
    await eventually(
        lambda: any("webhook was disabled" in m.subject for m in system.smtp.messages),
        30,
        "the email telling the subscriber its webhook was disabled",
    )
    assert [h.status for h in leaky_receiver.received][:1] == [403]
    mail = next(m for m in system.smtp.messages if "webhook was disabled" in m.subject)
    assert "HTTP 403" in mail.body
    assert "AWS_SECRET" not in mail.body and "internal-admin" not in mail.body
    errors = await fetch(system, "SELECT last_error FROM notifications WHERE channel = 'webhook'")
    audited = await fetch(
        system,
        "SELECT detail::text AS detail FROM audit_log WHERE action = 'subscription.disabled'",
    )
    assert errors and all("HTTP 403" in e["last_error"] for e in errors)
    assert all("AWS_SECRET" not in e["last_error"] for e in errors)
    assert audited and all("AWS_SECRET" not in a["detail"] for a in audited)
