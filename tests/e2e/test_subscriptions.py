"""GET/POST/DELETE /api/v1/subscriptions against the running system, and the create path's rules.

LBH lists LBI as its neighbour (and LBI lists LBH), so Islington's duty manager subscribes to
Hackney's shared alerts by default. The system runs with GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE=1, so a
webhook on 127.0.0.1 is accepted here; tests/e2e/test_subscription_rules.py runs the API with the
guard on, and holds it to the neighbour rule with callers this directory has no key for.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind, User
from goldenhour.contracts.shared import SubscriptionRequest
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.services.auth import Caller
from goldenhour.services.subscriptions_api import neighbours_of, plan_subscription
from tests.e2e.helpers import SystemSetup, create_subscription, fetch, subscription_count

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="subs")


async def listed(system: DevSystem, user: str) -> list[dict]:
    async with system.client(user) as c:
        r = await c.get("/subscriptions")
    assert r.status_code == 200, r.text
    return r.json()


async def refused(system: DevSystem, user: str, body: dict, status: int) -> str:
    """Post, expect `status`, check nothing was stored; the error text, for matching."""
    before = await subscription_count(system)
    r = await create_subscription(system, user, body)
    assert r.status_code == status, r.text
    assert await subscription_count(system) == before
    detail = r.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(e["msg"] for e in detail)


async def test_create_with_defaults(system):
    r = await create_subscription(system, "lbi-dm1", {"deliver": {"webhook_url": HOOK}})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["org_code"] == "LBI"
    assert sub["source_authorities"] == ["LBH"]
    assert sub["min_risk"] == "low" and sub["exploitation_types"] == []
    assert sub["webhook_url"] == HOOK
    assert sub["status"] == "active" and sub["created_by"] == "lbi-dm1"
    assert sub["webhook_secret"] and len(sub["webhook_secret"]) >= 40
    uuid.UUID(sub["subscription_id"])

    stored = await fetch(
        system, "SELECT * FROM subscriptions WHERE subscription_id = $1", sub["subscription_id"]
    )
    assert stored[0]["webhook_secret"] == sub["webhook_secret"]
    audited = await fetch(
        system,
        "SELECT actor, detail::text AS detail FROM audit_log WHERE action = 'subscription.created'",
    )
    mine = [a for a in audited if sub["subscription_id"] in a["detail"]]
    assert [a["actor"] for a in mine] == ["user:lbi-dm1"]
    assert sub["webhook_secret"] not in mine[0]["detail"]

    # Listed for the organisation without the secret; another organisation does not see it.
    (item,) = [
        s for s in await listed(system, "lbi-dm1") if s["subscription_id"] == sub["subscription_id"]
    ]
    assert "webhook_secret" not in item
    assert item["status"] == "active" and item["consecutive_failures"] == 0
    assert item["source_authorities"] == ["LBH"] and item["webhook_url"] == HOOK
    assert all(s["org_code"] == "LBH" for s in await listed(system, "lbh-sw1"))
    assert sub["subscription_id"] not in {
        s["subscription_id"] for s in await listed(system, "lbh-dm1")
    }


async def test_create_with_contacts_channels_and_webhook(system):
    body = {
        "source_authorities": ["LBH"],
        "min_risk": "medium",
        "exploitation_types": ["criminal", "sexual"],
        "deliver": {"contacts": ["lbi-duty"], "channels": ["sms", "email"], "webhook_url": HOOK},
    }
    r = await create_subscription(system, "lbi-dm1", body)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["contacts"] == ["lbi-duty"] and sub["channels"] == ["sms", "email"]
    assert sub["min_risk"] == "medium" and sub["exploitation_types"] == ["criminal", "sexual"]
    assert sub["webhook_secret"]
    (stored,) = await fetch(
        system, "SELECT * FROM subscriptions WHERE subscription_id = $1", sub["subscription_id"]
    )
    assert stored["contacts"] == ["lbi-duty"] and stored["channels"] == ["sms", "email"]
    assert stored["source_authorities"] == ["LBH"] and stored["min_risk"] == "medium"


async def test_contacts_only_has_no_secret(system):
    r = await create_subscription(
        system, "lbi-dm1", {"deliver": {"contacts": ["lbi-duty"], "channels": ["sms"]}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["webhook_secret"] is None and r.json()["webhook_url"] is None


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://127.0.0.1/hook", "URL scheme should be 'http' or 'https'"),
        ("http://user:secret@127.0.0.1:9/hook", "user name or password"),
        ("http://no-such-host.invalid/hook", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
async def test_bad_webhook_urls(system, url, why):
    detail = await refused(system, "lbi-dm1", {"deliver": {"webhook_url": url}}, 422)
    assert why in detail


@pytest.mark.parametrize(
    "sources, why",
    [
        (["ZZZ"], "ZZZ is not an organisation in the directory"),
        (["LBH", "MPS"], "MPS is a police, not a local_authority"),
        (["LBI"], "LBI is your own organisation"),
        ([], "source_authorities is empty"),
    ],
)
async def test_bad_source_authorities(system, sources, why):
    body = {"source_authorities": sources, "deliver": {"webhook_url": HOOK}}
    assert why in await refused(system, "lbi-dm1", body, 422)


@pytest.mark.parametrize(
    "deliver, why",
    [
        ({"contacts": ["lbh-duty"], "channels": ["sms"]}, "lbh-duty is not a contact of LBI"),
        ({"contacts": ["nobody"], "channels": ["sms"]}, "nobody is not a contact of LBI"),
        ({"contacts": ["lbi-duty"]}, "contacts need channels"),
        ({"channels": ["email"], "webhook_url": HOOK}, "channels need contacts"),
        ({}, "nothing to deliver to"),
    ],
)
async def test_bad_delivery(system, deliver, why):
    assert why in await refused(system, "lbi-dm1", {"deliver": deliver}, 422)


async def test_validation_errors_locate_the_field(system):
    r = await create_subscription(
        system, "lbi-dm1", {"source_authorities": ["ZZZ"], "deliver": {"webhook_url": HOOK}}
    )
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "source_authorities", 0]
    assert error["type"] == "unknown_authority"


@pytest.mark.parametrize("user", ["lbh-sw1", "oak-staff1", "mps-cr1"])
async def test_only_duty_managers_and_admins_create(system, user):
    body = {"deliver": {"webhook_url": HOOK}}
    assert "only a duty manager or admin" in await refused(system, user, body, 403)


async def test_delete(system):
    r = await create_subscription(system, "lbi-dm1", {"deliver": {"webhook_url": HOOK}})
    assert r.status_code == 201, r.text
    sub_id = r.json()["subscription_id"]

    async with system.client("lbh-dm1") as other, system.client("lbh-sw1") as worker:
        r = await other.delete(f"/subscriptions/{sub_id}")
        assert r.status_code == 404 and r.json()["detail"] == "no such subscription"
        r = await worker.delete(f"/subscriptions/{sub_id}")
        assert r.status_code == 403
    assert sub_id in {s["subscription_id"] for s in await listed(system, "lbi-dm1")}

    async with system.client("lbi-dm1") as c:
        r = await c.delete(f"/subscriptions/{sub_id}")
        assert r.status_code == 204 and r.content == b""
        r = await c.delete(f"/subscriptions/{sub_id}")
        assert r.status_code == 404
        r = await c.delete(f"/subscriptions/{uuid.uuid4()}")
        assert r.status_code == 404
    assert sub_id not in {s["subscription_id"] for s in await listed(system, "lbi-dm1")}

    (stored,) = await fetch(
        system, "SELECT status, deleted_at FROM subscriptions WHERE subscription_id = $1", sub_id
    )
    assert stored["status"] == "deleted" and stored["deleted_at"] is not None
    audited = await fetch(
        system,
        "SELECT actor FROM audit_log WHERE action = 'subscription.deleted'"
        " AND detail->>'subscription_id' = $1",
        sub_id,
    )
    assert [a["actor"] for a in audited] == ["user:lbi-dm1"]


async def test_no_key(system):
    async with httpx.AsyncClient(base_url=f"{system.api_url}/api/v1") as c:
        for r in (
            await c.get("/subscriptions"),
            await c.post("/subscriptions", json={"deliver": {"webhook_url": HOOK}}),
            await c.delete(f"/subscriptions/{uuid.uuid4()}"),
        ):
            assert r.status_code == 401, r.text
            assert "Bearer" in r.json()["detail"]
        r = await c.get("/subscriptions", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


# The create path's rules, on the directory alone: callers no key of the directory can be.

CONFIG = GoldenHourConfig.model_validate(directory()[0])
BODY = SubscriptionRequest.model_validate({"deliver": {"webhook_url": "https://93.184.216.34/"}})


def test_immigration_enforcement_can_never_subscribe():
    hoie = Organisation(code="HOIE", kind=OrgKind.immigration_enforcement)
    caller = Caller(org=hoie, user=User(id="hoie-1", roles=["admin"]))
    body = SubscriptionRequest.model_validate(
        {"source_authorities": ["LBH"], "deliver": {"webhook_url": "https://93.184.216.34/"}}
    )
    with pytest.raises(HTTPException) as refused_:
        plan_subscription(CONFIG, caller, body)
    assert refused_.value.status_code == 403
    assert "immigration_enforcement" in refused_.value.detail


def test_default_sources_are_the_authorities_that_list_you():
    assert neighbours_of(CONFIG, "LBI") == ["LBH"]
    assert neighbours_of(CONFIG, "LBH") == ["LBI"]
    assert neighbours_of(CONFIG, "MPS") == []


def test_no_neighbour_and_no_sources_named():
    mps = CONFIG.org("MPS")
    assert mps is not None
    caller = Caller(org=mps, user=User(id="mps-admin", roles=["admin"]))
    with pytest.raises(RequestValidationError) as refused_:
        plan_subscription(CONFIG, caller, BODY)
    (error,) = refused_.value.errors()
    assert error["loc"] == ("body", "source_authorities")
    assert error["msg"] == "no authority lists you (MPS) as a neighbour; name source_authorities"
    # Naming authorities does not get round the neighbour rule.
    named = BODY.model_copy(update={"source_authorities": ["LBH", "LBI", "LBH"]})
    with pytest.raises(HTTPException) as forbidden:
        plan_subscription(CONFIG, caller, named)
    assert forbidden.value.status_code == 403
    assert "LBH does not list MPS as a neighbour" in forbidden.value.detail


def test_named_sources_are_kept_once_each_in_their_order():
    config = GoldenHourConfig.model_validate(directory()[0])
    lbh = config.org("LBH")
    assert lbh is not None
    lbh.neighbours.append("MPS")
    for org in config.organisations:
        if org.code == "LBI":
            org.neighbours.append("MPS")
    caller = Caller(org=config.org("MPS"), user=User(id="mps-admin", roles=["admin"]))
    named = BODY.model_copy(update={"source_authorities": ["LBH", "LBI", "LBH"]})
    assert plan_subscription(config, caller, named).source_authorities == ["LBH", "LBI"]
