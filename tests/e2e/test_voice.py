"""Voice failover over real processes: an SMS Twilio will not take becomes a call that reads
the alert out (no name, no circumstances), `1` on the keypad acknowledges, any other key
repeats, and a forged voice callback is refused without changing anything.

The failover is set to 3 s here so the test is short; tests/e2e/test_twilio_outage.py runs
the 2-minute default."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.wording.messages import spell_out
from tests.e2e.helpers import (
    CHILD,
    SystemSetup,
    fetchval,
    place_high_risk_child,
    report_absence,
    running_system,
)

CONTROL_ROOM, DUTY, HOME = "+447700900010", "+447700900001", "+447700900020"
POLICE_CALL_DELIVERED = """
SELECT coalesce(bool_and(status = 'delivered'), false) FROM notifications
WHERE contact_id = 'mps-cr' AND channel = 'voice'
"""


def directory_with(**sections: object) -> Callable[[], tuple[dict, dict]]:
    """The London directory with these top-level config sections set."""

    def made() -> tuple[dict, dict]:
        config, keys = directory()
        config.update(sections)
        return config, keys

    return made


@pytest.fixture
async def system(stack: EmbeddedStack) -> AsyncIterator[DevSystem]:
    delivery = {"sms_failover_after": "3s", "unreachable_after": "10m"}
    setup = SystemSetup(name="voice", directory=directory_with(delivery=delivery))
    async with running_system(stack, setup) as s:
        yield s


async def test_stuck_sms_becomes_a_call_and_keypad_1_acknowledges(system: DevSystem) -> None:
    twilio = system.twilio
    # Every call rings for a while, so all three are placed before anyone presses a key.
    twilio.callback_delay = 0.5
    twilio.outage(500, 600, ops=("create",))
    twilio.press(CONTROL_ROOM, "1")
    twilio.press(HOME, "2")  # a wrong key: the alert is read again, nothing acknowledged
    await place_high_risk_child(system)
    await report_absence(system)

    await eventually(
        lambda: {c.to for c in twilio.calls} >= {CONTROL_ROOM, DUTY, HOME}, 60, "calls"
    )
    await eventually(lambda: all(c.status == "completed" for c in twilio.calls), 30, "calls end")
    assert not twilio.messages, "no SMS got through the outage"
    (police,) = twilio.calls_to(CONTROL_ROOM)
    spoken = " ".join(police.said)
    assert spell_out(CHILD) in spoken and "High risk" in spoken and "Mare Street" in spoken
    assert "Press 1" in spoken
    # Like an SMS, a call may be overheard: no circumstances, clothing or anything but the case.
    for private in ("college", "puffer", "joggers", CHILD):
        assert private not in spoken
    assert police.said[0] == police.said[1], "the alert is read twice"
    assert police.pressed == ["1"] and "acknowledged" in police.said[-1]
    (home,) = twilio.calls_to(HOME)
    assert home.pressed == ["2"] and "does not acknowledge" in " ".join(home.said)

    # The local Twilio ends a call before its status callback reaches us.
    async def police_call_delivered() -> bool:
        return await fetchval(system, POLICE_CALL_DELIVERED)

    await eventually(police_call_delivered, 30, "the police call marked delivered")
    db = await asyncpg.connect(system.database_url)
    try:
        rows = {
            (r["contact_id"], r["channel"]): r
            for r in await db.fetch("SELECT * FROM notifications WHERE step_key NOT LIKE 'u%'")
        }
        acks = await db.fetch("SELECT contact_id, via FROM acknowledgements")
        assert [(a["contact_id"], a["via"]) for a in acks] == [("mps-cr", "voice")]
        assert await db.fetchval("SELECT status FROM alerts") == "acknowledged"
        call, sms = rows[("mps-cr", "voice")], rows[("mps-cr", "sms")]
        assert call["failover_of"] == sms["notification_id"]
        assert call["provider_id"] == police.sid and call["status"] == "delivered"
        # Not before the failover time, by the database's clock that decided it.
        assert (call["created_at"] - sms["created_at"]).total_seconds() >= 3
        switches = await db.fetchval(
            "SELECT array_agg(detail::text) FROM audit_log WHERE action = 'notification.failover'"
        )
        assert {(d["contact_id"], d["channel"]) for d in map(json.loads, switches)} >= {
            ("mps-cr", "voice"),
            ("lbh-duty", "voice"),
        }

        # Forged or unsigned voice callbacks change nothing.
        duty_call = rows[("lbh-duty", "voice")]
        before = await db.fetchrow(
            "SELECT status, last_error FROM notifications WHERE notification_id = $1",
            duty_call["notification_id"],
        )
        base = f"{system.api_url}/api/v1/webhooks/twilio/voice"
        n = duty_call["notification_id"]
        forged = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
        async with httpx.AsyncClient(timeout=10) as client:
            for path, form, headers in (
                (f"/keypad?n={n}", {"Digits": "1", "CallSid": "CAforged"}, forged),
                (f"/keypad?n={n}", {"Digits": "1", "CallSid": "CAforged"}, {}),
                (f"/status?n={n}", {"CallSid": "CAforged", "CallStatus": "failed"}, forged),
                (f"?n={n}", {"CallSid": "CAforged"}, forged),
            ):
                r = await client.post(base + path, data=form, headers=headers)
                assert r.status_code == 403, (path, r.status_code, r.text)
        after = await db.fetchrow(
            "SELECT status, last_error FROM notifications WHERE notification_id = $1",
            duty_call["notification_id"],
        )
        assert after == before
        assert (
            await db.fetchval("SELECT count(*) FROM acknowledgements WHERE contact_id = 'lbh-duty'")
            == 0
        )
    finally:
        await db.close()
        twilio.outage(500, 0, ops=("create",))


@pytest.fixture
async def quick_system(stack: EmbeddedStack) -> AsyncIterator[DevSystem]:
    delivery = {"sms_failover_after": "2s", "unreachable_after": "8s"}
    operations = [{"id": "ops-1", "phone": "+447700900500", "email": "ops@gh.example"}]
    made = directory_with(delivery=delivery, operations=operations)
    async with running_system(stack, SystemSetup(name="voice", directory=made)) as s:
        yield s


async def test_a_contact_no_channel_reaches_is_reported_once(quick_system: DevSystem) -> None:
    system, twilio = quick_system, quick_system.twilio
    twilio.outage(500, 600, ops=("create",))
    for phone, email in ((CONTROL_ROOM, "cr@mps.example"), (DUTY, "duty@lbh.example")):
        twilio.set_call_outcome(phone, "no-answer")
        system.smtp.reject_recipient(email, 550)
    await place_high_risk_child(system)
    await report_absence(system)

    def notices(to: str) -> list:
        return [m for m in system.smtp.messages if to in m.rcpt_tos and "reach" in m.subject]

    await eventually(lambda: len(notices("ops@gh.example")) >= 2, 60, "operations told of both")
    # The control room is reported to the duty manager (whose own address bounces) and to
    # operations; the unreachable duty manager, the one on call by Hackney's rota, to the rota's
    # fallback and to operations, never to itself.
    subjects = [m.subject for m in notices("ops@gh.example")]
    assert len(subjects) == 2, subjects
    assert any("control room" in s for s in subjects), subjects
    assert any("duty manager" in s for s in subjects), subjects
    assert all(CHILD in s for s in subjects)
    body = notices("ops@gh.example")[0].body
    for private in ("college", "puffer", "joggers"):
        assert private not in body

    db = await asyncpg.connect(system.database_url)
    try:
        told = await db.fetch(
            "SELECT step_key, contact_id, channel FROM notifications"
            " WHERE step_key LIKE 'unreachable.%' ORDER BY 1, 2, 3"
        )
        assert [tuple(r) for r in told] == [
            ("unreachable.lbh-duty", "lbh-head", "email"),
            ("unreachable.lbh-duty", "lbh-head", "sms"),
            ("unreachable.lbh-duty", "ops-1", "email"),
            ("unreachable.lbh-duty", "ops-1", "sms"),
            ("unreachable.mps-cr", "lbh-duty", "email"),
            ("unreachable.mps-cr", "lbh-duty", "sms"),
            ("unreachable.mps-cr", "ops-1", "email"),
            ("unreachable.mps-cr", "ops-1", "sms"),
        ]
        untold = await db.fetchval(
            "SELECT count(*) FROM notifications WHERE contact_id = ANY($1)"
            " AND step_key NOT LIKE 'unreachable.%' AND status <> 'delivered'"
            " AND unreachable_told_at IS NULL",
            ["mps-cr", "lbh-duty"],
        )
        assert untold == 0
        # The care home manager's email got through: nobody is told about them.
        assert not await db.fetchval(
            "SELECT count(*) FROM notifications WHERE step_key = 'unreachable.oak-mgr'"
        )
        await asyncio.sleep(3)  # more passes of the loop change nothing
        assert (
            await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'contact.unreachable'")
            == 2
        )
        assert await db.fetchval(
            "SELECT count(*) FROM notifications WHERE step_key LIKE 'unreachable.%'"
        ) == len(told)
    finally:
        await db.close()
        twilio.outage(500, 0, ops=("create",))
