"""Bad input at every boundary: a clear 4xx, and nothing half-written."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldenhour.dev.devsystem import TWILIO_FROM
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import (
    CHILD,
    SystemSetup,
    absence,
    counts,
    place_high_risk_child,
    refused,
    report_absence,
    the_alert,
)


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="bad", prepare=place_high_risk_child)


async def test_no_credentials(system):
    r = await refused(system, None, absence(), 401)
    assert "Bearer" in r.json()["detail"]


async def test_wrong_key(system):
    async with httpx.AsyncClient(base_url=f"{system.api_url}/api/v1") as c:
        r = await c.post("/events", json=absence(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_malformed_json(system):
    r = await refused(system, "oak-staff1", b'{"event_id": ', 422)
    assert r.json()["detail"][0]["type"] == "json_invalid"


async def test_unknown_type(system):
    body = absence()
    body["type"] = "child.teleported"
    r = await refused(system, "oak-staff1", body, 422)
    assert r.json()["detail"][0]["loc"] == ["type"]


async def test_missing_field(system):
    body = absence()
    del body["data"]["last_seen_at"]
    r = await refused(system, "oak-staff1", body, 422)
    assert ["data", "last_seen_at"] in [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize("child_id", ["Amina Yusuf", "Amina", "x", "a" * 65])
async def test_name_or_bad_reference_as_child_id(system, child_id):
    body = absence()
    body["child_id"] = child_id
    r = await refused(system, "oak-staff1", body, 422)
    assert r.json()["detail"][0]["loc"] == ["child_id"]


async def test_future_last_seen(system):
    body = absence(last_seen_at=(datetime.now(UTC) + timedelta(minutes=10)).isoformat())
    r = await refused(system, "oak-staff1", body, 422)
    assert ["data", "last_seen_at"] in [e["loc"] for e in r.json()["detail"]]


async def test_naive_timestamp(system):
    body = absence(last_seen_at="2026-11-22T21:40:00")
    await refused(system, "oak-staff1", body, 422)


async def test_body_of_200_kb(system):
    body = absence(circumstances="x" * 200_000)
    r = await refused(system, "oak-staff1", json.dumps(body), 413)
    assert "larger than" in r.json()["detail"]


async def test_submitter_cannot_be_claimed_in_the_body(system):
    body = absence()
    body["submitted_by"] = {"org_code": "MPS", "user_id": "mps-cr1"}
    await refused(system, "oak-staff1", body, 422)


async def test_care_home_may_report_only_children_placed_with_it(system):
    r = await refused(system, "elm-staff1", absence(), 403)
    assert "is yours to report on" in r.json()["detail"]


async def test_checkin_for_another_placement(system):
    body = event(
        "checkin.recorded",
        CHILD,
        {"placement_id": "P-ELSEWHERE", "seen_at": datetime.now(UTC).isoformat()},
    )
    r = await refused(system, "oak-staff1", body, 403)
    assert "P-ELSEWHERE" in r.json()["detail"]


async def test_unknown_child(system):
    body = absence()
    body["child_id"] = "LBH-2026-9999"
    r = await refused(system, "lbh-dm1", body, 403)
    assert "child.identified first" in r.json()["detail"]


async def test_placement_at_unknown_care_home(system):
    body = event("placement.started", CHILD, {"placement_id": "P-9", "care_home": "NOPE"})
    await refused(system, "lbh-dm1", body, 403)


async def test_duplicate_event_id_is_accepted_once(system):
    body = event(
        "checkin.recorded",
        CHILD,
        {"placement_id": f"{CHILD}-P1", "seen_at": datetime.now(UTC).isoformat()},
    )
    async with system.client("oak-staff1") as c:
        first = await c.post("/events", json=body)
        before = await counts(system)
        again = await c.post("/events", json=body)
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 200 and again.json() == {
        "event_id": body["event_id"],
        "status": "duplicate",
    }
    assert await counts(system) == before


async def test_forged_twilio_signatures(system):
    async with httpx.AsyncClient(base_url=f"{system.api_url}/api/v1") as c:
        for path in ("/webhooks/twilio/status", "/webhooks/twilio/inbound"):
            r = await c.post(
                path,
                data={
                    "MessageSid": "SM1",
                    "MessageStatus": "delivered",
                    "From": "+447700900001",
                    "Body": "ACK 1234",
                },
                headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
            )
            assert r.status_code == 403
            r = await c.post(path, data={"From": "+447700900001", "Body": "ACK 1234"})
            assert r.status_code == 403


async def test_alert_reads_and_acks(system):
    await report_absence(system)
    alert = await the_alert(system)
    # A wrong ACK code by SMS gets help and acknowledges nothing.
    await eventually(lambda: len(system.twilio.messages) >= 3, 5, "first wave")
    status, reply = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound",
        "+447700900001",
        TWILIO_FROM,
        "ACK 00000000",
    )
    assert status == 200 and "no open alert" in reply
    status, reply = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound",
        "+447700900001",
        TWILIO_FROM,
        "on my way",
    )
    assert status == 200 and "reply ACK" in reply
    assert (await the_alert(system))["status"] == "open"

    async with system.client("elm-staff1") as other, system.client("lbi-dm1") as neighbour:
        assert (await other.get(f"/alerts/{alert['alert_id']}")).status_code == 404
        assert (await neighbour.post(f"/alerts/{alert['alert_id']}/ack")).status_code == 404
        assert (await other.get("/alerts")).json() == []
    async with system.client("mps-cr1") as police:
        assert (await police.get(f"/alerts/{uuid.uuid4()}")).status_code == 404
        assert (await police.get("/alerts/not-a-uuid")).status_code == 422
        first = await police.post(f"/alerts/{alert['alert_id']}/ack")
        again = await police.post(f"/alerts/{alert['alert_id']}/ack")
        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "acknowledged"
    acks = (await the_alert(system))["acknowledgements"]
    assert [(a["user_id"], a["via"]) for a in acks] == [("mps-cr1", "api")]


async def test_health_and_metrics(system):
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 401  # the counts are the operator's
        metrics = (await c.get("/metrics", headers=system.metrics_headers())).text
    assert "goldenhour_events_accepted_total" in metrics
    assert "goldenhour_events_refused_total" in metrics


async def refusals(system) -> dict[tuple[str, str], float]:
    """The API's refused events, by type and reason, as Prometheus reads them."""
    async with httpx.AsyncClient(base_url=system.api_url) as c:
        page = (await c.get("/metrics", headers=system.metrics_headers())).text
    return {
        (s.labels["type"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(page)
        if family.name == "goldenhour_events_refused"
        for s in family.samples
        if s.name.endswith("_total")
    }


async def test_refusals_are_counted_by_type_and_reason(system):
    before = await refusals(system)
    unknown_type = absence()
    unknown_type["type"] = "child.teleported"
    no_last_seen = absence()
    del no_last_seen["data"]["last_seen_at"]
    await refused(system, "oak-staff1", b"\x00{not json", 422)
    await refused(system, "oak-staff1", unknown_type, 422)
    await refused(system, "oak-staff1", no_last_seen, 422)
    await refused(system, "elm-staff1", absence(), 403)
    await refused(system, "oak-staff1", b"x" * 200_000, 413)
    after = await refusals(system)
    grown = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    # A type a caller makes up is counted as unknown: the labels stay a closed set.
    assert grown == {
        ("unknown", "invalid"): 2,
        ("absence.reported", "invalid"): 1,
        ("absence.reported", "forbidden"): 1,
        ("unknown", "too_large"): 1,  # refused by the app's cap, before the route read it
    }
