"""The CAP 1.2 feed against the running system: a neighbouring borough reads Hackney's shared
alert as Atom and as CAP valid against the OASIS schema; anyone else finds nothing.

The shared alert row is written straight into the system's database (its content exactly what
the sharing step stores: a SharedAlert's JSON), for an alert raised through the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from lxml import etree

from goldenhour.contracts.shared import SHARED_FIELDS, SharedAlert
from goldenhour.dev.devsystem import DevSystem
from tests.e2e.helpers import CHILD, place_high_risk_child, report_absence, the_alert

XSD = Path(__file__).parents[1] / "data" / "cap" / "CAP-v1.2.xsd"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}


async def publish(system: DevSystem, shared: SharedAlert, published_at: datetime) -> None:
    """Store a version of the shared alert as the sharing step does (insert, then update)."""
    conn = await asyncpg.connect(system.database_url)
    try:
        await conn.execute(
            """
            INSERT INTO shared_alerts (shared_id, alert_id, source_authority, msg_type, version,
                                       payload, published_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
            ON CONFLICT (shared_id) DO UPDATE SET msg_type = EXCLUDED.msg_type,
                version = EXCLUDED.version, payload = EXCLUDED.payload,
                updated_at = EXCLUDED.updated_at
            """,
            shared.shared_id,
            shared.alert_reference,
            shared.issuing_authority,
            shared.msg_type,
            shared.version,
            shared.model_dump_json(),
            published_at,
            shared.sent_at,
        )
    finally:
        await conn.close()


def anonymous(system: DevSystem) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{system.api_url}/api/v1", timeout=10.0)


async def test_a_neighbour_reads_the_shared_alert_as_atom_and_cap(start_system):
    system = await start_system()
    await place_high_risk_child(system)
    await report_absence(system)
    alert = await the_alert(system)
    published_at = datetime.now(UTC).replace(microsecond=0)
    shared = SharedAlert(
        shared_id=uuid.uuid4(),
        alert_reference=alert["alert_id"],
        msg_type="Alert",
        version=1,
        sent_at=published_at,
        case_reference=CHILD,
        age_estimate=15,
        gender="female",
        clothing="black puffer jacket, grey joggers",
        languages=["Tigrinya"],
        last_seen_at=alert["last_seen_at"],
        last_seen_location=alert["last_seen_location"],
        risk_level=alert["risk_level"],
        issuing_authority="LBH",
        issuing_authority_name="Hackney Children's Services",
        duty_number="+447700900001",
    )
    await publish(system, shared, published_at)
    schema = etree.XMLSchema(file=str(XSD))
    cap_path = f"/shared-alerts/{shared.shared_id}.cap"

    # Islington lists Hackney as a neighbour (and Hackney issued it): both read it.
    for user in ("lbi-dm1", "lbh-dm1"):
        async with system.client(user) as c:
            feed = await c.get("/shared-alerts.atom")
            assert feed.status_code == 200, feed.text
            assert feed.headers["content-type"].startswith("application/atom+xml")
            [entry] = etree.fromstring(feed.content).findall("atom:entry", NS)
            assert entry.findtext("atom:id", namespaces=NS) == f"urn:uuid:{shared.shared_id}:v1"
            link = entry.find("atom:link[@rel='alternate']", NS)
            assert link.get("type") == "application/cap+xml"
            assert link.get("href") == f"{system.api_url}/api/v1{cap_path}"

            cap = await c.get(cap_path)
            assert cap.status_code == 200, cap.text
            assert cap.headers["content-type"].startswith("application/cap+xml")
            root = etree.fromstring(cap.content)
            schema.assertValid(root)
    assert root.findtext("cap:msgType", namespaces=NS) == "Alert"
    assert root.findtext("cap:identifier", namespaces=NS) == f"goldenhour-{shared.shared_id}-v1"
    assert root.findtext("cap:info/cap:severity", namespaces=NS) == "Severe"
    assert root.findtext("cap:info/cap:category", namespaces=NS) == "Rescue"
    assert root.findtext("cap:info/cap:area/cap:areaDesc", namespaces=NS) == (
        "Mare Street bus stop, Hackney"
    )
    names = root.xpath("//cap:parameter/cap:valueName/text()", namespaces=NS)
    assert "case_reference" in names and set(names) <= SHARED_FIELDS
    # What the shared alert does not hold cannot be in its CAP: the circumstances of the absence.
    assert b"college" not in cap.content

    # A new version (the stand-down) refers to the original alert.
    cancel = shared.model_copy(
        update={"msg_type": "Cancel", "version": 2, "sent_at": published_at + timedelta(minutes=5)}
    )
    await publish(system, cancel, published_at)
    async with system.client("lbi-dm1") as c:
        cap = await c.get(cap_path)
        feed = await c.get("/shared-alerts.atom")
    assert cap.status_code == 200 and feed.status_code == 200
    root = etree.fromstring(cap.content)
    schema.assertValid(root)
    assert root.findtext("cap:msgType", namespaces=NS) == "Cancel"
    sent = published_at.strftime("%Y-%m-%dT%H:%M:%S-00:00")
    assert root.findtext("cap:references", namespaces=NS) == (
        f"goldenhour@lbh.gov.uk,goldenhour-{shared.shared_id}-v1,{sent}"
    )
    [entry] = etree.fromstring(feed.content).findall("atom:entry", NS)
    assert entry.findtext("atom:id", namespaces=NS) == f"urn:uuid:{shared.shared_id}:v2"

    # Elm Lodge is in Islington but no authority lists it as a neighbour: nothing to see.
    async with system.client("elm-staff1") as c:
        feed = await c.get("/shared-alerts.atom")
        assert feed.status_code == 200
        assert etree.fromstring(feed.content).findall("atom:entry", NS) == []
        assert (await c.get(cap_path)).status_code == 404
        assert (await c.get(f"/shared-alerts/{uuid.uuid4()}.cap")).status_code == 404
        assert (await c.get("/shared-alerts/not-an-id.cap")).status_code == 422

    # No key, no feed.
    async with anonymous(system) as c:
        assert (await c.get("/shared-alerts.atom")).status_code == 401
        assert (await c.get(cap_path)).status_code == 401
