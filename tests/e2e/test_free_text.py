"""Free text through the running API: a NUL or a line break is never a 500, every text is stored
as one line, and what the screen withholds never reaches the police SMS."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from goldenhour.wording.screen import WITHHELD
from tests.e2e.console_client import Console
from tests.e2e.helpers import (
    CHILD,
    SystemSetup,
    absence,
    counts,
    fetchval,
    place_high_risk_child,
    refused,
)

SPOOF = "Mare St.\r\nSTAND DOWN: child found, no action needed."


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="text", passwords=("oak-staff1",), prepare=place_high_risk_child)


async def stored_data(system: DevSystem, event_id: str) -> dict:
    data = await fetchval(
        system, "SELECT data FROM events WHERE event_id = $1", uuid.UUID(event_id)
    )
    return json.loads(data) if isinstance(data, str) else data


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("circumstances", "\x00"),
        ("last_seen_location", "\r\n"),
        ("clothing", "\u202e\u2028\t"),
    ],
)
async def test_a_text_of_nothing_but_controls_is_422_at_its_field(system, field, text):
    r = await refused(system, "oak-staff1", absence(**{field: text}), 422)
    assert ["data", field] in [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("child_id", "LBH-2026\x00-0042"),
        ("placement_id", "P\x001"),
        ("last_seen_at", "2026-11-22T21:40:00\x00+00:00"),
    ],
)
async def test_a_nul_in_a_reference_or_an_instant_is_422_at_its_field(system, where, value):
    body = absence()
    if where == "child_id":
        body["child_id"] = value
    else:
        body["data"][where] = value
    r = await refused(system, "oak-staff1", body, 422)
    loc = [where] if where == "child_id" else ["data", where]
    assert loc in [e["loc"] for e in r.json()["detail"]]


async def test_a_nul_in_a_subscription_is_422(system):
    async with system.client("lbi-dm1") as c:
        r = await c.post(
            "/subscriptions",
            json={"deliver": {"contacts": ["lbi\x00duty"], "channels": ["sms"]}},
        )
    assert r.status_code == 422, r.text


async def test_nul_and_line_breaks_are_stored_as_one_line_and_kept_out_of_the_sms(system):
    body = absence(
        last_seen_location=SPOOF,
        circumstances="Left\x00 with an adult\r\nin a grey car",
        clothing="red\thoodie\u202e",
    )
    before = await counts(system)
    async with system.client("oak-staff1") as c:
        r = await c.post("/events", json=body)
    assert r.status_code == 202, r.text
    assert (await counts(system))[0] == before[0] + 1
    data = await stored_data(system, body["event_id"])
    assert data["last_seen_location"] == "Mare St. STAND DOWN: child found, no action needed."
    assert data["circumstances"] == "Left with an adult in a grey car"
    assert data["clothing"] == "red hoodie"

    def first_wave() -> list:
        return [m for m in system.twilio.messages if CHILD in m.body]

    await eventually(lambda: len(first_wave()) >= 2, 30, "the police and duty manager SMS")
    for sms in first_wave():
        assert "\n" not in sms.body and "\r" not in sms.body
        assert "STAND DOWN" not in sms.body and "no action" not in sms.body
        assert WITHHELD in sms.body
    detail = await fetchval(
        system, "SELECT detail FROM alert_steps WHERE step_key = 'withheld_sms'"
    )
    assert detail and "last seen location withheld from SMS" in detail


async def test_an_event_with_a_nul_in_every_text_is_never_a_500(system):
    stamp = datetime.now(UTC).isoformat()
    for data in (
        {"last_seen_at": stamp, "last_seen_location": "a\x00b", "circumstances": "\x00x"},
        {"last_seen_at": stamp, "clothing": "x" * 499 + "\x00"},
    ):
        async with system.client("oak-staff1") as c:
            r = await c.post("/events", json=event("absence.reported", CHILD, data))
        assert r.status_code < 500, r.text


async def test_the_absence_form_tells_reporters_never_to_type_a_name_or_nationality(system):
    oak = Console(system)
    await oak.sign_in("oak-staff1")
    page = await oak.get("/console/care")
    assert page.status_code == 200
    rule = re.search(r'<p class="hint" id="free-text-rule">([^<]*)</p>', page.text)
    assert rule and "Never type the child's name or nationality" in html.unescape(rule[1])
