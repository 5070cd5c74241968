"""Durable timers: a step that falls due while the streams worker is down fires, once, when a
worker is back."""

from __future__ import annotations

import asyncio
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from goldenhour.dev.twilio_local import SentSms
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import place_high_risk_child, report_absence, step_keys, the_alert

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}
STEP1 = {"+447700900011", "+447700900002"}


async def test_step_due_while_streams_worker_was_down_fires_once(start_system):
    system = await start_system(scale=0.2)  # the 15-minute step is due 3 s after last seen
    await place_high_risk_child(system)
    await report_absence(system)
    await eventually(lambda: {m.to for m in system.twilio.messages} >= STEP0, 5, "first wave")

    system.parts["streams"].kill()
    await asyncio.sleep(4)  # the 15-minute step and a reminder fall due with no worker
    assert not {m.to for m in system.twilio.messages} & STEP1

    system.restart("streams")
    await eventually(
        lambda: {m.to for m in system.twilio.messages} >= STEP1, 20, "late 15-min step"
    )
    await asyncio.sleep(1)
    alert = await the_alert(system)
    fired = [s["step_key"] for s in alert["steps"] if s["status"] == "fired"]
    assert Counter(fired)[step_keys(system)[1]] == 1
    # (The 60-minute step may fire too on a slow restart: only the 15-minute one is counted.)
    escalations = Counter(
        m.to for m in system.twilio.messages if "ESCALATION" in m.body and m.to in STEP1
    )
    assert escalations == Counter({phone: 1 for phone in STEP1})

    # Once, counted where it matters: what the provider received, per (alert, step, contact,
    # channel) of the message row each SMS was sent for.
    async def all_sent() -> dict:
        alert = await the_alert(system)
        sms = _sms_rows(alert)
        assert all(n["status"] in ("sent", "delivered") for n in sms), sms
        return alert

    alert = await eventually(all_sent, 20, "every SMS row sent or delivered", every=0.1)
    due = {_row_key(alert, n) for n in _sms_rows(alert)}
    received_sms = list(system.twilio.messages)
    latest = await the_alert(system)  # holds the row of every SMS received so far
    rows = {n["notification_id"]: n for n in latest["notifications"]}
    received = Counter(_row_key(latest, rows[_notification_of(m)]) for m in received_sms)
    assert due <= set(received)  # every due SMS reached the provider
    assert set(received.values()) == {1}, received  # and none of them twice


def _sms_rows(alert: dict) -> list[dict]:
    return [n for n in alert["notifications"] if n["channel"] == "sms"]


def _notification_of(sms: SentSms) -> str:
    """The message row an SMS was sent for, from the status callback the dispatcher gave."""
    assert sms.status_callback, "every SMS carries its status callback"
    return parse_qs(urlsplit(sms.status_callback).query)["n"][0]


def _row_key(alert: dict, n: dict) -> tuple:
    return (alert["alert_id"], n["step_key"], n["contact_id"], n["channel"])
