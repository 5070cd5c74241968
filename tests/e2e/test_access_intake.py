"""Who acts for a child, over the running system: a placement belongs to one child, open alerts
follow the child to a new home and a new authority, an identification never changes who acts
for a child, and an unknown child cannot be told from someone else's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, directory, event, placement
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import (
    SystemSetup,
    api_get,
    fetch,
    place_high_risk_child,
    post_event,
)

OAK_MANAGER = "+447700900020"
ELM_MANAGER = "+447700900040"
ELM_CONTACT = {
    "id": "elm-mgr",
    "role": "manager",
    "phone": ELM_MANAGER,
    "email": "mgr@elm.example",
}


def _config() -> tuple[dict, dict]:
    """The dev directory with a manager at Elm Lodge, told at the 15-minute step as well."""
    config, keys = directory()
    for org in config["organisations"]:
        if org["code"] == "ELM":
            org["contacts"] = [ELM_CONTACT]
    second = config["policies"]["high"]["steps"][1]
    second["notify"] = [*second["notify"], "care_home.manager"]
    return config, keys


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="access", directory=_config)


async def counts(system: DevSystem) -> list[int]:
    found = await fetch(
        system,
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM outbox),"
        " (SELECT count(*) FROM placements), (SELECT count(*) FROM children)",
    )
    return list(found[0])


async def absent(system: DevSystem, user: str, child_id: str, placement_id: str, ago_min=0):
    data = {
        "last_seen_at": (datetime.now(UTC) - timedelta(minutes=ago_min)).isoformat(),
        "last_seen_location": "Mare Street bus stop",
        "placement_id": placement_id,
    }
    r = await post_event(system, user, event("absence.reported", child_id, data))
    assert r.status_code == 202, r.text


async def live_alert(system: DevSystem, child_id: str, user: str = "lbh-dm1") -> dict:
    async def mine() -> list[dict]:
        r = await api_get(system, user, "/alerts")
        assert r.status_code == 200, r.text
        return [a for a in r.json() if a["child_id"] == child_id]

    alerts = await eventually(mine, 10, f"a live alert for {child_id} visible to {user}")
    return alerts[0]


async def alert_ids(system: DevSystem, user: str) -> set[str]:
    r = await api_get(system, user, "/alerts")
    assert r.status_code == 200, r.text
    return {a["alert_id"] for a in r.json()}


async def test_a_placement_of_another_child_is_refused(system):
    hackney, islington = "LBH-2026-0101", "LBI-2026-0201"
    await place_high_risk_child(system, hackney)
    r = await post_event(
        system,
        "lbi-dm1",
        event("child.identified", islington, {**IDENTIFIED, "local_authority": "LBI"}),
    )
    assert r.status_code == 202, r.text
    before = await counts(system)

    hijack = {"placement_id": f"{hackney}-P1", "care_home": "ELM"}
    r = await post_event(system, "lbi-dm1", event("placement.started", islington, hijack))

    assert r.status_code == 409, r.text
    assert "belongs to another child" in r.json()["detail"]
    # Whose it is, and where that child lives, stay unsaid.
    assert "OAK" not in r.text and "LBH" not in r.text.replace(hijack["placement_id"], "")
    assert await counts(system) == before
    held = await fetch(
        system,
        "SELECT child_id, care_home FROM placements WHERE placement_id = $1",
        hijack["placement_id"],
    )
    assert [tuple(p) for p in held] == [(hackney, "OAK")]
    oak = await api_get(system, "oak-staff1", f"/children/{hackney}")
    assert oak.status_code == 200, oak.text
    assert oak.json()["placement"]["care_home"] == "OAK"
    assert (await api_get(system, "elm-staff1", f"/children/{hackney}")).status_code == 404
    seen = {"placement_id": f"{hackney}-P1", "seen_at": datetime.now(UTC).isoformat()}
    assert (
        await post_event(system, "oak-staff1", event("checkin.recorded", hackney, seen))
    ).status_code == 202


async def test_placing_a_child_again_at_its_own_placement_is_allowed(system):
    child = "LBH-2026-0104"
    await place_high_risk_child(system, child)
    r = await post_event(system, "lbh-dm1", event("placement.started", child, placement(child)))
    assert r.status_code == 202, r.text


async def test_an_open_alert_follows_the_child_to_its_new_home(system):
    child = "LBH-2026-0102"
    await place_high_risk_child(system, child)
    await absent(system, "oak-staff1", child, f"{child}-P1")
    alert = await live_alert(system, child)
    assert alert["alert_id"] in await alert_ids(system, "oak-staff1")
    await system.twilio.wait_for(lambda m: m.to == OAK_MANAGER and child in m.body, timeout=30)
    told_oak = len(system.twilio.messages_to(OAK_MANAGER))

    moved = {**placement(child, "ELM"), "placement_id": f"{child}-P2"}
    r = await post_event(system, "lbh-dm1", event("placement.started", child, moved))
    assert r.status_code == 202, r.text

    # The move and the alert's move are one transaction: no wait.
    assert alert["alert_id"] in await alert_ids(system, "elm-staff1")
    assert alert["alert_id"] not in await alert_ids(system, "oak-staff1")
    assert (await api_get(system, "oak-staff1", f"/alerts/{alert['alert_id']}")).status_code == 404
    # Elm reports an earlier sighting: the clock moves back past the 15-minute step, which
    # tells the care home's manager; that is now Elm's.
    await absent(system, "elm-staff1", child, f"{child}-P2", ago_min=20)
    await system.twilio.wait_for(lambda m: m.to == ELM_MANAGER and child in m.body, timeout=30)
    fired = await fetch(
        system,
        "SELECT count(*) FROM alert_steps WHERE alert_id = $1 AND status = 'fired'",
        uuid.UUID(alert["alert_id"]),
    )
    assert fired[0][0] >= 2
    assert len(system.twilio.messages_to(OAK_MANAGER)) == told_oak


async def test_identification_never_changes_who_acts_but_a_transfer_does(system):
    child = "LBH-2026-0103"
    await place_high_risk_child(system, child)
    await absent(system, "oak-staff1", child, f"{child}-P1")
    alert = (await live_alert(system, child))["alert_id"]
    again = {**IDENTIFIED, "risk_level": "low"}
    for user in ("mps-cr1", "lbh-dm1"):
        r = await post_event(system, user, event("child.identified", child, again))
        assert r.status_code == 409, (user, r.text)
        assert "already identified" in r.json()["detail"]
        assert "child.transferred" in r.json()["detail"]
    # Naming another authority: the case reference is not of its authority (422), or not the
    # caller's to identify (403), before the record is looked at.
    moved = {**again, "local_authority": "LBI"}
    r = await post_event(system, "mps-cr1", event("child.identified", child, moved))
    assert r.status_code == 422 and "must begin with its local authority's code" in r.text
    r = await post_event(system, "lbi-dm1", event("child.identified", child, again))
    assert r.status_code == 403 and "identifies its own children" in r.text
    record = await api_get(system, "lbh-dm1", f"/children/{child}")
    assert record.status_code == 200, record.text
    assert (record.json()["local_authority"], record.json()["risk_level"]) == ("LBH", "high")
    assert (await api_get(system, "lbi-dm1", f"/children/{child}")).status_code == 404

    before = await counts(system)
    refusals = [
        ("mps-cr1", "LBI", 403, "only the child's local authority or a national unit"),
        ("lbi-dm1", "LBI", 403, "is yours to report on"),
        ("oak-staff1", "LBI", 403, "may not submit child.transferred"),
        ("lbh-dm1", "NOPE", 403, "unknown local authority NOPE"),
        ("lbh-dm1", "MPS", 403, "unknown local authority MPS"),
        ("lbh-dm1", "LBH", 409, "already with LBH"),
    ]
    for user, to, status, says in refusals:
        r = await post_event(
            system, user, event("child.transferred", child, {"local_authority": to})
        )
        assert r.status_code == status, (user, to, r.text)
        assert says in r.json()["detail"], (user, to, r.json())
    assert await counts(system) == before

    transfer = event("child.transferred", child, {"local_authority": "LBI", "reason": "moved"})
    r = await post_event(system, "lbh-dm1", transfer)
    assert r.status_code == 202, r.text
    assert (await post_event(system, "lbh-dm1", transfer)).json()["status"] == "duplicate"

    assert (await api_get(system, "lbh-dm1", f"/children/{child}")).status_code == 404
    record = await api_get(system, "lbi-dm1", f"/children/{child}")
    assert record.status_code == 200, record.text
    assert (record.json()["local_authority"], record.json()["risk_level"]) == ("LBI", "high")
    assert alert in await alert_ids(system, "lbi-dm1")
    assert alert not in await alert_ids(system, "lbh-dm1")
    audited = await fetch(
        system,
        "SELECT actor, detail->>'event_id' FROM audit_log WHERE action = $1 AND child_id = $2",
        "event.child.transferred",
        child,
    )
    assert [tuple(a) for a in audited] == [("user:lbh-dm1", transfer["event_id"])]

    # The streams worker takes the new event as it takes every other, never as a dead letter.
    event_id = uuid.UUID(transfer["event_id"])

    async def processed() -> bool:
        done = await fetch(system, "SELECT 1 FROM processed_events WHERE event_id = $1", event_id)
        return bool(done)

    await eventually(processed, 10, "the streams worker to apply child.transferred")
    dead = await fetch(system, "SELECT 1 FROM dead_letters WHERE event_id = $1", event_id)
    assert dead == []


async def test_an_unknown_child_and_someone_elses_get_the_same_answer(system):
    known = "LBH-2026-0105"
    await place_high_risk_child(system, known)
    unknown = "LBH-2026-9999"
    now = datetime.now(UTC).isoformat()
    asks = [
        ("lbi-dm1", "absence.reported", {"last_seen_at": now}),
        ("lbi-dm1", "placement.started", {"placement_id": "LBI-P-7", "care_home": "ELM"}),
        ("lbi-dm1", "child.transferred", {"local_authority": "LBI"}),
        ("elm-staff1", "absence.reported", {"last_seen_at": now}),
        ("elm-staff1", "checkin.recorded", {"placement_id": f"{known}-P1"}),
        ("elm-staff1", "placement.started", {"placement_id": "ELM-P-7", "care_home": "ELM"}),
    ]
    for user, event_type, data in asks:
        to_known = await post_event(system, user, event(event_type, known, data))
        to_unknown = await post_event(system, user, event(event_type, unknown, data))
        assert to_known.status_code == to_unknown.status_code == 403, (user, event_type)
        assert to_known.content == to_unknown.content, (user, event_type)
        assert "is yours to report on" in to_known.json()["detail"]


async def test_another_authority_cannot_tell_whether_a_case_reference_exists(system):
    """Identifying a child of another authority is refused before the record is looked at, so
    the answer for a known and an unknown case reference is the same, and nothing is written."""
    known = "LBH-2026-0106"
    await place_high_risk_child(system, known)
    before = await counts(system)
    for user, data in (
        ("lbi-dm1", {**IDENTIFIED, "local_authority": "LBH"}),
        ("lbi-dm1", {**IDENTIFIED, "local_authority": "ZZZ"}),
    ):
        to_known = await post_event(system, user, event("child.identified", known, data))
        to_unknown = await post_event(
            system, user, event("child.identified", "LBH-2026-9998", data)
        )
        assert to_known.status_code == to_unknown.status_code, (to_known.text, data)
        assert to_known.status_code in (403, 422) and to_known.content == to_unknown.content
    # Islington's own reference space is its own: it cannot take one of Hackney's.
    squat = await post_event(
        system,
        "lbi-dm1",
        event("child.identified", "LBH-2026-0107", {**IDENTIFIED, "local_authority": "LBI"}),
    )
    assert squat.status_code == 422, squat.text
    assert await counts(system) == before
