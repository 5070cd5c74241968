"""On-call rotas over the running system: a step pages the one on duty, a swap or an override made
through the API changes who that is at once, a handover during an open alert briefs the one
coming on and keeps reminding the one going off, and a gap pages the rota's fallback.

The London directory's rotas put lbh-duty (Hackney's duty managers) and mps-cr (the Met's
control room) on call this week, and lbh-edt-2 and mps-cr-2 off. A policy minute lasts a
second: reminders every 10 s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.oncall import shifts
from goldenhour.dev.devsystem import TWILIO_FROM, DevSystem
from goldenhour.dev.london import directory, event
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import SystemSetup, fetchval, place_high_risk_child, report_absence

ROTA = "lbh-duty-rota"
PHONE = {
    "lbh-duty": "+447700900001",
    "lbh-head": "+447700900002",
    "lbh-edt-2": "+447700900004",
    "mps-cr": "+447700900010",
    "mps-cr-2": "+447700900012",
}


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(
        "rotas", lambda: directory(scale=1.0), env={"GOLDENHOUR_ROTA_WATCH_S": "0.5"}
    )


def texts_to(system: DevSystem, who: str, after: float = 0.0) -> list[str]:
    return [m.body for m in system.twilio.messages_to(PHONE[who]) if m.received_at >= after]


def alerts_for(system: DevSystem, child: str, who: str, after: float = 0.0) -> list[str]:
    return [b for b in texts_to(system, who, after) if child in b and "HANDOVER" not in b]


@contextlib.asynccontextmanager
async def change(system: DevSystem, path: str, body: dict) -> AsyncIterator[dict]:
    """A change made as Hackney's duty manager, withdrawn afterwards whatever happened."""
    async with system.client("lbh-dm1") as c:
        r = await c.post(f"/rotas/{ROTA}/{path}", json=body)
        assert r.status_code == 201, r.text
        made = r.json()
        try:
            yield made
        finally:
            gone = await c.delete(f"/rotas/{ROTA}/overrides/{made['change_id']}")
            assert gone.status_code == 204, gone.text


async def open_alert(system: DevSystem, child: str) -> None:
    await place_high_risk_child(system, child)
    await report_absence(system, child_id=child)


async def test_the_routes_say_who_is_on_now_and_over_the_next_two_weeks(system) -> None:
    async with system.client("lbh-dm1") as c:
        listed = (await c.get("/rotas")).json()
        assert [(r["rota_id"], r["on_call"]["members"]) for r in listed] == [(ROTA, ["lbh-duty"])]
        assert listed[0]["on_call"]["source"] == "pattern"
        weeks_on = (datetime.now(UTC) + timedelta(days=8)).isoformat()
        later = (await c.get(f"/rotas/{ROTA}/oncall", params={"at": weeks_on})).json()
        assert later["members"] == ["lbh-edt-2"]  # the other member's week
        page = (await c.get(f"/rotas/{ROTA}/shifts")).json()
    assert page[0]["members"] == ["lbh-duty"] and not page[0]["gap"]
    for before, after in zip(page, page[1:], strict=False):
        assert before["end"] == after["start"]  # the fortnight, whole
    async with system.client("mps-cr1") as c:
        police = (await c.get("/rotas")).json()
        assert [(r["rota_id"], r["on_call"]["members"]) for r in police] == [
            ("mps-control-room", ["mps-cr"])
        ]
        assert (await c.get(f"/rotas/{ROTA}/oncall")).status_code == 404


async def test_bad_changes_are_refused_naming_the_field_and_leave_nothing(system) -> None:
    now = datetime.now(UTC)
    start, end = (now + timedelta(days=20)).isoformat(), (now + timedelta(days=21)).isoformat()

    def override(**fields: object) -> dict:
        return {"action": "add", "member": "lbh-edt-2", "start": start, "end": end, **fields}

    refused = {
        "end before start": (override(start=end, end=start), "range_order"),
        "unknown contact": (override(member="lbh-nobody"), "not_a_rota_contact"),
        "another org's contact": (override(member="mps-cr"), "not_a_rota_contact"),
        "replace without by": (override(action="replace"), "override_by"),
        "no offset": (override(start="2026-12-25T09:00:00"), "timezone_aware"),
        "the year 9999": (override(end="9999-12-31T23:00:00-05:00"), "instant_range"),
        # In lbh-edt-2's week: lbh-duty is not on then, so there is nobody to replace.
        "nobody to replace": (
            override(
                action="replace",
                member="lbh-duty",
                by="lbh-edt-2",
                start=(now + timedelta(days=21)).isoformat(),
                end=(now + timedelta(days=22)).isoformat(),
            ),
            "not_on_then",
        ),
        "ended already": (
            override(start=(now - timedelta(days=2)).isoformat(), end=now.isoformat()),
            "end_past",
        ),
    }
    async with system.client("lbh-dm1") as c:
        for why, (body, kind) in refused.items():
            r = await c.post(f"/rotas/{ROTA}/overrides", json=body)
            assert r.status_code == 422, (why, r.text)
            assert kind in {e["type"] for e in r.json()["detail"]}, (why, r.text)
        first = await c.post(f"/rotas/{ROTA}/overrides", json=override())
        assert first.status_code == 201, first.text
        clash = await c.post(f"/rotas/{ROTA}/overrides", json=override(action="remove"))
        assert clash.status_code == 422
        assert first.json()["change_id"] in clash.text
        no_shift = await c.post(
            f"/rotas/{ROTA}/swaps", json={"member": "lbh-duty", "shift_start": start}
        )
        assert no_shift.status_code == 422
        assert no_shift.json()["detail"][0]["loc"] == ["body", "shift_start"]
        gone = await c.delete(f"/rotas/{ROTA}/overrides/{first.json()['change_id']}")
        assert gone.status_code == 204
    async with system.client("lbh-sw1") as c:
        assert (await c.post(f"/rotas/{ROTA}/overrides", json=override())).status_code == 403
    async with system.client("lbi-dm1") as c:
        assert (await c.post(f"/rotas/{ROTA}/overrides", json=override())).status_code == 404
    stored = await fetchval(system, "SELECT count(*) FROM rota_changes")
    assert stored == 1  # the one accepted, withdrawn; nothing of the refused


async def test_an_absence_pages_only_the_duty_manager_and_control_room_on_duty(system) -> None:
    child = "LBH-2026-0101"
    await open_alert(system, child)
    await eventually(
        lambda: alerts_for(system, child, "lbh-duty") and alerts_for(system, child, "mps-cr"),
        15,
        "the ones on duty paged",
    )
    assert alerts_for(system, child, "lbh-edt-2") == []
    assert alerts_for(system, child, "mps-cr-2") == []


async def test_a_swap_made_through_the_api_changes_who_is_paged(system) -> None:
    config = GoldenHourConfig.model_validate(system.config)
    _, rota = config.rota(ROTA) or (None, None)
    assert rota is not None
    now = datetime.now(UTC)
    current = next(s for s in shifts(rota, config.tz, now, now + timedelta(seconds=1)))
    body = {"member": "lbh-duty", "shift_start": current.start.isoformat(), "by": "lbh-edt-2"}
    async with change(system, "swaps", body) as swap:
        assert (swap["status"], swap["by"]) == ("active", "lbh-edt-2")
        async with system.client("lbh-dm1") as c:
            on = (await c.get(f"/rotas/{ROTA}/oncall")).json()
        assert (on["members"], on["source"]) == (["lbh-edt-2"], "override")
        child = "LBH-2026-0102"
        await open_alert(system, child)
        await eventually(lambda: alerts_for(system, child, "lbh-edt-2"), 15, "the taker paged")
        assert alerts_for(system, child, "lbh-duty") == []


async def test_a_handover_briefs_the_one_coming_on_and_reminds_both(system) -> None:
    child = "LBH-2026-0103"
    await open_alert(system, child)
    await eventually(lambda: alerts_for(system, child, "lbh-duty"), 15, "the first page")
    handover = datetime.now(UTC) + timedelta(seconds=1)
    body = {
        "action": "replace",
        "member": "lbh-duty",
        "by": "lbh-edt-2",
        "start": handover.isoformat(),
        "end": (handover + timedelta(hours=1)).isoformat(),
        "reason": "lbh-duty called to a strategy meeting",
    }
    async with change(system, "overrides", body):
        briefings = await eventually(
            lambda: [b for b in texts_to(system, "lbh-edt-2") if "HANDOVER" in b and child in b],
            20,
            "the handover briefing",
        )
        assert len(briefings) == 1 and len(briefings[0]) <= 320
        briefed_at = time.time()
        # The next reminder reaches the one who went off duty and the one who came on.
        await eventually(
            lambda: (
                [b for b in alerts_for(system, child, "lbh-edt-2", briefed_at)]
                and [b for b in alerts_for(system, child, "lbh-duty", briefed_at)]
            ),
            25,
            "a reminder to both",
        )
        # The one briefed acknowledges by SMS with the code the briefing gave.
        code = briefings[0].split(child, 1)[1].split("ACK ", 1)[1][:6]
        status, reply = await system.twilio.send_inbound(
            f"{system.api_url}/api/v1/webhooks/twilio/inbound",
            PHONE["lbh-edt-2"],
            TWILIO_FROM,
            f"ACK {code}",
        )
        assert status == 200 and "acknowledged" in reply, reply
        async with system.client("lbh-dm1") as c:
            r = await c.post(
                "/events",
                json=event(
                    "child.located",
                    child,
                    {"located_at": datetime.now(UTC).isoformat(), "status": "returned"},
                ),
            )
            assert r.status_code == 202, r.text
        await eventually(
            lambda: [b for b in texts_to(system, "lbh-edt-2") if "STAND DOWN" in b and child in b],
            15,
            "the stand-down to the one briefed",
        )
    assert [b for b in texts_to(system, "lbh-duty") if "HANDOVER" in b and child in b] == []


async def test_a_gap_pages_the_fallback_and_warns_the_duty_managers(system) -> None:
    now = datetime.now(UTC)
    body = {
        "action": "remove",
        "member": "lbh-duty",
        "start": now.isoformat(),
        "end": (now + timedelta(hours=2)).isoformat(),
        "reason": "off sick, no cover yet",
    }
    async with change(system, "overrides", body):
        async with system.client("lbh-dm1") as c:
            on = (await c.get(f"/rotas/{ROTA}/oncall")).json()
        assert (on["members"], on["fallback"]) == (["lbh-head"], True)
        child = "LBH-2026-0104"
        started = time.time()
        await open_alert(system, child)
        await eventually(
            lambda: [b for b in alerts_for(system, child, "lbh-head") if "ESCALATION" not in b],
            15,
            "the fallback paged at the first step",
        )
        assert alerts_for(system, child, "lbh-duty", started) == []
        warned = await eventually(
            lambda: [
                m
                for m in system.smtp.messages
                if "nobody is on call" in m.subject and "duty@lbh.example" in m.rcpt_tos
            ],
            15,
            "the gap told to the duty managers",
        )
        assert len(warned) == 1 and "lbh-head" in warned[0].body
