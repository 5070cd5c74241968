"""Acceptance scenario 1 in full: the shared alert reaches a neighbouring borough's subscriber
after the acknowledgement, minimised, once per version, by SMS and by a signed webhook; the
stand-down reaches it too. And a failing webhook is retried, then disabled with an email."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer

from goldenhour.contracts.shared import SHARED_FIELDS
from goldenhour.dev.devsystem import TWILIO_FROM
from goldenhour.dev.london import IDENTIFIED, event
from goldenhour.dev.waiting import eventually
from goldenhour.dev.webhook_local import LocalWebhookReceiver
from tests.e2e.helpers import CHILD, place_high_risk_child, report_absence, the_alert

LBI_DUTY = "+447700900101"
# The date of birth as any message might write it.
BIRTH_DATE_FORMS = ("2011-03-01", "01/03/2011", "1 March 2011", "01/03/11")


@pytest.fixture
async def receiver() -> AsyncIterator[LocalWebhookReceiver]:
    r = LocalWebhookReceiver()
    await r.start()
    yield r
    await r.stop()


async def read_topic(bootstrap: str, topic: str, count: int) -> list[dict]:
    """The first `count` records of a topic, from the real broker."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[dict] = []

        async def enough() -> list[dict]:
            batch = await consumer.getmany(timeout_ms=500)
            found.extend(json.loads(r.value) for records in batch.values() for r in records)
            assert len(found) >= count, f"{len(found)} of {count} records"
            return found

        await eventually(enough, 15, f"{count} records on {topic}", every=0)
        return sorted(found, key=lambda p: p["shared"]["version"])
    finally:
        await consumer.stop()


async def subscribe(system, receiver: LocalWebhookReceiver) -> dict:
    async with system.client("lbi-dm1") as lbi:
        r = await lbi.post(
            "/subscriptions",
            json={
                "min_risk": "medium",
                "deliver": {
                    "contacts": ["lbi-duty"],
                    "channels": ["sms", "email"],
                    "webhook_url": receiver.url(),
                },
            },
        )
    assert r.status_code == 201, r.text
    body = r.json()
    receiver.set_secret(body["webhook_secret"])
    return body


async def test_shared_alert_reaches_the_neighbour_after_the_ack(start_system, receiver):
    system = await start_system(scale=0.2, extra_unless_ack_step=True)
    sub = await subscribe(system, receiver)
    assert sub["source_authorities"] == ["LBH"]
    await place_high_risk_child(system)
    await report_absence(system)
    await eventually(lambda: len(system.twilio.messages) >= 3, 5, "first wave")

    # The duty manager acknowledges before the 30-minute share step (6 s here).
    code = system.twilio.messages[0].body.rsplit("ACK ", 1)[1].split()[0]
    status, _ = await system.twilio.send_inbound(
        f"{system.api_url}/api/v1/webhooks/twilio/inbound",
        "+447700900001",
        TWILIO_FROM,
        f"ACK {code}",
    )
    assert status == 200

    await eventually(
        lambda: any(m.to == LBI_DUTY for m in system.twilio.messages), 10, "the shared alert by SMS"
    )
    await receiver.wait_for(lambda h: h.status == 200, timeout=5)
    [shared_sms] = [m for m in system.twilio.messages if m.to == LBI_DUTY]
    assert shared_sms.body.startswith("SHARED ALERT from Hackney")
    assert CHILD in shared_sms.body and "ACK" not in shared_sms.body
    [hook] = [h for h in receiver.received if h.status == 200]
    assert hook.verified
    assert set(hook.json) <= SHARED_FIELDS
    assert hook.json["msg_type"] == "Alert" and hook.json["case_reference"] == CHILD
    assert hook.json["issuing_authority"] == "LBH"
    await eventually(
        lambda: any(m.rcpt_tos == ["duty@lbi.example"] for m in system.smtp.messages),
        5,
        "the shared alert by email",
    )
    emails = [m for m in system.smtp.messages if m.rcpt_tos == ["duty@lbi.example"]]
    assert len(emails) == 1 and "SHARED ALERT" in emails[0].subject
    # The date of birth and the statutory return's id stay in the record: no message, no
    # shared alert carries them.
    told = [m.body for m in system.twilio.messages] + [m.body for m in system.smtp.messages]
    for secret in (*BIRTH_DATE_FORMS, IDENTIFIED["ssda903_id"]):
        assert all(secret not in text for text in [*told, json.dumps(hook.json)]), secret

    # The stand-down reaches the same subscriber, over the same channels.
    async with system.client("oak-staff1") as home:
        r = await home.post(
            "/events",
            json=event(
                "child.located",
                CHILD,
                {"located_at": datetime.now(UTC).isoformat(), "status": "returned"},
            ),
        )
        assert r.status_code == 202
    await receiver.wait_for(
        lambda h: h.status == 200 and h.json["msg_type"] == "Cancel", timeout=10
    )
    await eventually(
        lambda: sum(m.to == LBI_DUTY for m in system.twilio.messages) >= 2,
        5,
        "the cancellation by SMS",
    )
    await asyncio.sleep(1)
    versions = Counter(
        (h.json["msg_type"], h.json["version"]) for h in receiver.received if h.status == 200
    )
    assert versions == Counter({("Alert", 1): 1, ("Cancel", 2): 1})
    assert sum(m.to == LBI_DUTY for m in system.twilio.messages) == 2
    # Published on its own Kafka topic too, with the allow-listed fields and nothing else.
    published = await read_topic(
        system.kafka_bootstrap, f"{system.env['GOLDENHOUR_TOPIC_PREFIX']}.shared-alerts.v1", 2
    )
    assert [p["shared"]["msg_type"] for p in published] == ["Alert", "Cancel"]
    for p in published:
        assert set(p["shared"]) <= SHARED_FIELDS
    alert = await the_alert(system)
    shared_rows = [n for n in alert["notifications"] if n["step_key"].startswith("share")]
    assert {(n["contact_id"], n["channel"]) for n in shared_rows} >= {
        ("lbi-duty", "sms"),
        ("lbi-duty", "email"),
    }


async def test_a_failing_webhook_is_retried_then_disabled_with_an_email(start_system, receiver):
    system = await start_system(scale=0.1, env={"GOLDENHOUR_WEBHOOK_MAX_FAILURES": "3"})
    receiver.fail_next(20, 503)
    sub = await subscribe(system, receiver)
    await place_high_risk_child(system)
    await report_absence(system)
    await eventually(
        lambda: any("webhook was disabled" in m.subject for m in system.smtp.messages),
        20,
        "the email telling the subscriber its webhook was disabled",
    )
    assert len([h for h in receiver.received if h.status == 503]) == 3
    async with system.client("lbi-dm1") as lbi:
        listed = (await lbi.get("/subscriptions")).json()
    [mine] = [s for s in listed if s["subscription_id"] == sub["subscription_id"]]
    assert mine["status"] == "disabled" and mine["consecutive_failures"] == 3
    mail = next(m for m in system.smtp.messages if "webhook was disabled" in m.subject)
    assert mail.rcpt_tos == ["duty@lbi.example"]
