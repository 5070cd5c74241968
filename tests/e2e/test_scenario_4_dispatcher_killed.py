"""Acceptance scenario 4: the dispatcher is killed (SIGKILL) mid-escalation and restarted; every
due message is sent exactly once.

It is killed mid-send: the provider has taken the first wave's SMS but not yet answered, so
their rows are still `sending` when the process dies. Status callbacks are off for that wave,
so only the restarted dispatcher's reconcile with the provider's own log stands between the
kill and a second SMS to each of those contacts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import asyncpg

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.email import message_id_for
from tests.e2e.helpers import fetch, place_high_risk_child, report_absence, the_alert

STEP0 = {"+447700900010", "+447700900001", "+447700900020"}
STEP1 = {"+447700900011", "+447700900002"}
# Longer than the wait to kill the dispatcher, shorter than its SMS client's timeout.
PROVIDER_ANSWERS_AFTER_S = 5.0


async def rows(system: DevSystem, alert_id: str) -> list[asyncpg.Record]:
    return await fetch(
        system,
        "SELECT notification_id, alert_id, step_key, contact_id, channel, status"
        " FROM notifications WHERE alert_id = $1",
        uuid.UUID(alert_id),
    )


def notification_of(status_callback: str | None) -> str | None:
    """The row an SMS was sent for, from its status callback URL (`…/status?n=<id>`)."""
    if not status_callback:
        return None
    return parse_qs(urlsplit(status_callback).query).get("n", [None])[0]


async def test_dispatcher_killed_mid_send_sends_everything_once(start_system):
    # 1 policy minute = 0.4 s: the 15-minute step falls due 6 s after last seen.
    system = await start_system(scale=0.4, env={"GOLDENHOUR_SEND_LEASE_S": "2"})
    await place_high_risk_child(system)
    system.twilio.set_callbacks(False)
    system.twilio.set_create_delay(PROVIDER_ANSWERS_AFTER_S)
    await report_absence(system)

    # The provider holds the first wave's SMS; the dispatcher still waits for its answers.
    await eventually(
        lambda: {m.to for m in system.twilio.messages} >= STEP0, 5, "first wave at Twilio"
    )
    alert_id = (await the_alert(system))["alert_id"]

    async def emails_marked() -> bool:
        got = await rows(system, alert_id)
        return sum(r["channel"] == "email" and r["status"] == "sent" for r in got) >= 3

    # Email has no provider log to reconcile with (see the README): it is not killed mid-send.
    # The wait is short: the dispatcher must be killed before the provider answers its SMS.
    await eventually(emails_marked, 3, "the first emails to be marked sent", every=0.03)
    in_flight = {
        str(r["notification_id"])
        for r in await rows(system, alert_id)
        if r["channel"] == "sms" and r["status"] == "sending"
    }
    system.parts["dispatcher"].kill()
    at_provider = {notification_of(m.status_callback) for m in system.twilio.messages}
    assert len(in_flight & at_provider) == 3, "not killed while the first SMS were in flight"
    still = {
        str(r["notification_id"]) for r in await rows(system, alert_id) if r["status"] == "sending"
    }
    assert in_flight <= still, "a killed dispatcher's sends were marked"
    killed_at = len(system.twilio.messages)
    system.twilio.set_create_delay(0)
    system.twilio.set_callbacks(True)

    # While it is down, the clock fires the 15-minute step and reminders: rows wait as pending.
    async def pending() -> bool:
        return sum(r["status"] == "pending" for r in await rows(system, alert_id)) >= 4

    await eventually(
        pending, 20, "the 15-minute step to queue while the dispatcher is down", every=0.1
    )
    assert len(system.twilio.messages) == killed_at  # nothing is sent without a dispatcher

    system.restart("dispatcher")
    await eventually(
        lambda: {m.to for m in system.twilio.messages} >= STEP0 | STEP1, 15, "catch-up"
    )

    async def all_sent() -> list[asyncpg.Record]:
        got = await rows(system, alert_id)
        assert {r["status"] for r in got} <= {"sent", "delivered"}, [dict(r) for r in got]
        return got

    final = await eventually(all_sent, 15, "every row sent or delivered", every=0.1)

    # Exactly once, as the provider saw it: per (alert, step, contact, channel), one message.
    key = {str(r["notification_id"]): (r["step_key"], r["contact_id"]) for r in final}
    sms_rows = {key[str(r["notification_id"])] for r in final if r["channel"] == "sms"}
    received = Counter(key.get(notification_of(m.status_callback)) for m in system.twilio.messages)
    assert None not in received, "an SMS reached the provider for no row of this alert"
    assert set(received) == sms_rows, "a due SMS never reached the provider"
    assert {k: n for k, n in received.items() if n != 1} == {}, "an SMS was sent twice"

    email_rows = {(r["step_key"], r["contact_id"]) for r in final if r["channel"] == "email"}
    mail_key = {
        message_id_for(f"{alert_id}:{step}:{contact}:email"): (step, contact)
        for step, contact in email_rows
    }
    mails = Counter(mail_key.get(m.message_id) for m in system.smtp.messages)
    assert None not in mails, "an email reached the server for no row of this alert"
    assert set(mails) == email_rows, "a due email never reached the server"
    assert {k: n for k, n in mails.items() if n != 1} == {}, "an email was sent twice"
