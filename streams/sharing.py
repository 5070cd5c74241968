"""Shared alerts to neighbouring authorities: built from the allow-list, delivered once per
subscription and version, updated on a new sighting and cancelled when the child is found.

Deliveries are message rows like any other (the dispatcher sends them, over SMS, email or the
subscription's signed webhook); their unique key makes each version reach each subscriber once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import structlog

from contracts.config import GoldenHourConfig, OrgKind
from contracts.events import RiskLevel
from contracts.shared import SharedAlert, SharedAlertPublished
from infra.db import audit
from streams.recipients import FirewallViolation
from streams.requests import requested
from streams.shared_messages import email_shared, sms_shared

log = structlog.get_logger(__name__)

_RANK = {"low": 1, "medium": 2, "high": 3}

_INSERT = """
INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id, org_code,
                           channel, address, subject, body, status, next_attempt_at, created_at,
                           subscription_id)
SELECT n.id, $1, $2, $3, n.contact_id, n.org_code, n.channel, n.address, n.subject, n.body,
       'pending', $4, $4, n.subscription_id
FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::uuid[])
     AS n(id, contact_id, org_code, channel, address, subject, body, subscription_id)
ON CONFLICT (alert_id, step_key, contact_id, channel) DO NOTHING
RETURNING notification_id, step_key, contact_id, channel
"""


def step_key_for(shared: SharedAlert) -> str:
    """One key per version of the shared alert, so each reaches each subscriber once."""
    return "share_cancel" if shared.msg_type == "Cancel" else f"share_v{shared.version}"


def matches(sub: asyncpg.Record, risk_level: str, exploitation: list[str]) -> bool:
    """Whether a subscription asked for an alert of this risk and these exploitation types."""
    if _RANK[risk_level] < _RANK[sub["min_risk"]]:
        return False
    wanted = set(sub["exploitation_types"])
    return not wanted or bool(wanted & set(exploitation))


class Sharing:
    """Publishes and delivers the shared alert of one missing-child alert."""

    def __init__(self, config: GoldenHourConfig, tz) -> None:
        self.config = config
        self.tz = tz

    async def share(self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime):
        """The `share: neighbours` step: version 1 to every matching active subscription."""
        existing = await conn.fetchrow(
            "SELECT * FROM shared_alerts WHERE alert_id = $1", alert["alert_id"]
        )
        if existing is not None:
            return []
        child = await conn.fetchrow("SELECT * FROM children WHERE child_id = $1", alert["child_id"])
        shared = self._build(alert, child, uuid.uuid4(), "Alert", 1, now)
        await conn.execute(
            "INSERT INTO shared_alerts (shared_id, alert_id, source_authority, msg_type, version,"
            " payload, published_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
            shared.shared_id,
            alert["alert_id"],
            alert["local_authority"],
            "Alert",
            shared.model_dump(mode="json"),
            now,
        )
        subs = await conn.fetch(
            "SELECT * FROM subscriptions WHERE status = 'active' AND $1 = ANY(source_authorities)",
            alert["local_authority"],
        )
        chosen = [
            s
            for s in subs
            if matches(s, alert["risk_level"], list(child["exploitation_types"] or []))
        ]
        return await self._deliver(conn, alert, shared, chosen, now)

    async def follow_up(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, msg_type: str, now: datetime
    ):
        """An update (new sighting) or a cancellation, to the subscribers the alert reached."""
        row = await conn.fetchrow(
            "SELECT * FROM shared_alerts WHERE alert_id = $1 FOR UPDATE", alert["alert_id"]
        )
        if row is None or row["msg_type"] == "Cancel":
            return []
        child = await conn.fetchrow("SELECT * FROM children WHERE child_id = $1", alert["child_id"])
        shared = self._build(alert, child, row["shared_id"], msg_type, row["version"] + 1, now)
        await conn.execute(
            "UPDATE shared_alerts SET msg_type = $2, version = $3, payload = $4, updated_at = $5"
            " WHERE shared_id = $1",
            row["shared_id"],
            msg_type,
            shared.version,
            shared.model_dump(mode="json"),
            now,
        )
        subs = await conn.fetch(
            "SELECT * FROM subscriptions WHERE status = 'active' AND subscription_id IN ("
            " SELECT subscription_id FROM notifications WHERE alert_id = $1"
            " AND subscription_id IS NOT NULL)",
            alert["alert_id"],
        )
        return await self._deliver(conn, alert, shared, list(subs), now)

    def _build(
        self, alert, child, shared_id: uuid.UUID, msg_type: str, version: int, now: datetime
    ) -> SharedAlert:
        """The allow-listed content, and nothing else (the model refuses any other field)."""
        description = (child["description"] if child else None) or {}
        la = self.config.org(alert["local_authority"])
        duty = next(
            (c.phone for c in (la.contacts if la else []) if c.role == "duty_manager"), None
        )
        return SharedAlert(
            shared_id=shared_id,
            alert_reference=alert["alert_id"],
            msg_type=msg_type,
            version=version,
            sent_at=now,
            case_reference=alert["child_id"],
            age_estimate=description.get("age_estimate"),
            gender=description.get("gender"),
            height_cm=description.get("height_cm"),
            clothing=alert["clothing"] or description.get("clothing"),
            distinguishing_features=description.get("distinguishing_features"),
            languages=list(description.get("languages") or []),
            last_seen_at=alert["anchor_at"],
            last_seen_location=alert["last_seen_location"],
            risk_level=RiskLevel(alert["risk_level"]),
            issuing_authority=alert["local_authority"],
            issuing_authority_name=(la.name or la.code) if la else alert["local_authority"],
            duty_number=duty,
        )

    async def _deliver(self, conn, alert, shared: SharedAlert, subs: list, now: datetime):
        """Message rows for each subscription's contacts, channels and webhook."""
        sms, (subject, body) = sms_shared(shared, self.tz), email_shared(shared, self.tz)
        payload = shared.model_dump_json()
        rows: list[tuple] = []
        for sub in subs:
            org = self.config.org(sub["org_code"])
            # Asserted where the list is built, whatever the API already refused.
            if org is None or org.kind == OrgKind.immigration_enforcement:
                raise FirewallViolation(
                    f"subscription {sub['subscription_id']} of {sub['org_code']}"
                )
            for contact in (c for c in org.contacts if c.id in set(sub["contacts"])):
                for channel in sub["channels"]:
                    address = contact.phone if channel == "sms" else str(contact.email)
                    text = ("", sms) if channel == "sms" else (subject, body)
                    rows.append(
                        (
                            uuid.uuid4(),
                            contact.id,
                            org.code,
                            channel,
                            address,
                            *text,
                            sub["subscription_id"],
                        )
                    )
            if sub["webhook_url"]:
                rows.append(
                    (
                        uuid.uuid4(),
                        f"sub-{sub['subscription_id']}",
                        org.code,
                        "webhook",
                        sub["webhook_url"],
                        "",
                        payload,
                        sub["subscription_id"],
                    )
                )
        key = step_key_for(shared)
        inserted = []
        if rows:
            inserted = await conn.fetch(
                _INSERT,
                alert["alert_id"],
                alert["child_id"],
                key,
                now,
                *[list(col) for col in zip(*rows, strict=True)],
            )
        await audit(
            conn,
            f"shared_alert.{shared.msg_type.lower()}",
            alert["child_id"],
            alert["alert_id"],
            {"version": shared.version, "subscriptions": [str(s["subscription_id"]) for s in subs]},
        )
        log.info(
            "shared_alert.published",
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            msg_type=shared.msg_type,
            version=shared.version,
            deliveries=len(inserted),
        )
        events: list = [
            SharedAlertPublished(
                occurred_at=now,
                child_id=alert["child_id"],
                alert_id=alert["alert_id"],
                shared=shared,
            )
        ]
        events += requested(alert, inserted, now)
        return events
