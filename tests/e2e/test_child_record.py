"""GET /children/{id}: the child's record for the child's own agencies, 404 for everybody else."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import CHILD, place_high_risk_child, report_absence


async def record_when(
    system: DevSystem, holds: Callable[[dict], bool], what: str, user: str = "lbh-dm1"
) -> dict:
    """The child's record once `holds(record)`, or fail saying what never showed."""
    async with system.client(user) as c:

        async def record() -> dict:
            r = await c.get(f"/children/{CHILD}")
            assert r.status_code == 200, r.text
            assert holds(r.json()), r.json()
            return r.json()

        return await eventually(record, 10, f"the child's record to show {what}", every=0.1)


async def test_child_record_for_its_agencies_only(start_system):
    system = await start_system()
    await place_high_risk_child(system)

    # After placement: high risk, placed at Oak House, a check-in clock running.
    record = await record_when(
        system, lambda r: any(c["kind"] == "checkin" for c in r["clocks"]), "a check-in clock"
    )
    assert record["child_id"] == CHILD
    assert record["local_authority"] == "LBH"
    assert record["risk_level"] == "high"
    assert record["exploitation_types"] == ["criminal"]
    assert record["description"]["age_estimate"] == 15
    assert record["placement"]["placement_id"] == f"{CHILD}-P1"
    assert record["placement"]["care_home"] == "OAK"
    assert record["placement"]["checkin_interval_minutes"] == 60
    assert record["open_alerts"] == []
    assert record["episodes"] == []
    assert record["episodes_in_window"] == 0
    assert record["return_interview_due_at"] is None

    # After an absence report: one live missing alert, one episode.
    await report_absence(system)
    record = await record_when(system, lambda r: r["open_alerts"], "the missing alert")
    assert [a["kind"] for a in record["open_alerts"]] == ["missing"]
    alert = record["open_alerts"][0]
    assert alert["status"] in ("open", "acknowledged")
    assert len(record["episodes"]) == 1
    episode = record["episodes"][0]
    assert episode["alert_id"] == alert["alert_id"]
    assert episode["last_seen_at"] == alert["last_seen_at"]
    assert episode["resolved_at"] is None
    assert record["episodes_in_window"] == 1

    # The police force of the child's authority sees it too.
    async with system.client("mps-cr1") as police:
        r = await police.get(f"/children/{CHILD}")
        assert r.status_code == 200, r.text
        assert r.json()["child_id"] == CHILD

    # Another care home, another authority and an unknown child: the same 404.
    for user in ("elm-staff1", "lbi-dm1"):
        async with system.client(user) as other:
            r = await other.get(f"/children/{CHILD}")
            assert r.status_code == 404, (user, r.text)
            assert r.json() == {"detail": "no such child"}
    async with system.client("lbh-dm1") as la:
        r = await la.get("/children/LBH-2026-9999")
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": "no such child"}
        # A name is not a case reference.
        r = await la.get("/children/Amina")
        assert r.status_code == 422, r.text

    # No key: 401.
    async with httpx.AsyncClient(base_url=f"{system.api_url}/api/v1") as anonymous:
        r = await anonymous.get(f"/children/{CHILD}")
        assert r.status_code == 401, r.text
