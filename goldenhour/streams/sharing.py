"""Shared alerts to neighbouring authorities: built from the allow-list, delivered once per
subscription and version, updated on a new sighting and cancelled when the child is found.

Deliveries are message rows like any other (the dispatcher sends them, over SMS, email or the
subscription's signed webhook); their unique key makes each version reach each subscriber once.

The texts a shared alert carries (clothing, gender, last-seen place) pass the screen
(`wording.screen`) first: one that mentions nationality or immigration status, or reads like
an instruction of our own, is replaced by "see the case in Golden Hour", and the alert's
timeline says so. The free-text distinguishing features are never shared. A subscription whose
organisation has left the directory is disabled and skipped; the others are still delivered.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import structlog

from goldenhour.contracts.config import GoldenHourConfig, OrgKind
from goldenhour.contracts.events import RiskLevel
from goldenhour.contracts.languages import shared_language
from goldenhour.contracts.oncall import on_duty_contacts
from goldenhour.contracts.shared import SharedAlert, SharedAlertPublished
from goldenhour.infra import rota_changes, subscriptions
from goldenhour.infra.db import audit
from goldenhour.infra.notifications import Outgoing, queue
from goldenhour.streams.recipients import FirewallViolation
from goldenhour.streams.requests import requested
from goldenhour.streams.withholding import record_withheld
from goldenhour.wording.screen import screen
from goldenhour.wording.shared_messages import email_shared, sms_shared

log = structlog.get_logger(__name__)

SCREENED_FIELDS = ("gender", "clothing", "last_seen_location")
"""The shared alert's texts a person typed; the screen reads each before it is shared."""

LEFT_DIRECTORY = "organisation no longer in the directory"

SHARED_OF_ALERT = "SELECT * FROM shared_alerts WHERE alert_id = $1"
SHARED_OF_ALERT_LOCKED = "SELECT * FROM shared_alerts WHERE alert_id = $1 FOR UPDATE"
CHILD = "SELECT * FROM children WHERE child_id = $1"

PUBLISH_SHARED = """
INSERT INTO shared_alerts (shared_id, alert_id, source_authority, msg_type, version,
    payload, published_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $6)
"""

NEXT_VERSION = """
UPDATE shared_alerts SET msg_type = $2, version = $3, payload = $4, updated_at = $5
WHERE shared_id = $1
"""

SUBSCRIBED_TO_SOURCE = """
SELECT * FROM subscriptions WHERE status = 'active' AND $1 = ANY(source_authorities)
"""

# The active subscriptions an earlier version of the alert's shared alert reached.
SUBSCRIBERS_REACHED = """
SELECT * FROM subscriptions WHERE status = 'active' AND subscription_id IN (
    SELECT subscription_id FROM notifications WHERE alert_id = $1
    AND subscription_id IS NOT NULL)
"""


def step_key_for(shared: SharedAlert) -> str:
    """One key per version of the shared alert, so each reaches each subscriber once."""
    return "share_cancel" if shared.msg_type == "Cancel" else f"share_v{shared.version}"


def matches(sub: asyncpg.Record, risk_level: str, exploitation: list[str]) -> bool:
    """Whether a subscription asked for an alert of this risk and these exploitation types."""
    if RiskLevel(risk_level).rank < RiskLevel(sub["min_risk"]).rank:
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
        existing = await conn.fetchrow(SHARED_OF_ALERT, alert["alert_id"])
        if existing is not None:
            return []
        child = await conn.fetchrow(CHILD, alert["child_id"])
        duty = await self._duty_phone(conn, alert, now)
        built = self._build(alert, child, uuid.uuid4(), "Alert", 1, now, duty)
        shared = await self._screened(conn, alert, built, now)
        await conn.execute(
            PUBLISH_SHARED,
            shared.shared_id,
            alert["alert_id"],
            alert["local_authority"],
            "Alert",
            shared.model_dump(mode="json"),
            now,
        )
        subs = await conn.fetch(SUBSCRIBED_TO_SOURCE, alert["local_authority"])
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
        row = await conn.fetchrow(SHARED_OF_ALERT_LOCKED, alert["alert_id"])
        if row is None or row["msg_type"] == "Cancel":
            return []
        child = await conn.fetchrow(CHILD, alert["child_id"])
        duty = await self._duty_phone(conn, alert, now)
        built = self._build(alert, child, row["shared_id"], msg_type, row["version"] + 1, now, duty)
        shared = await self._screened(conn, alert, built, now)
        await conn.execute(
            NEXT_VERSION,
            row["shared_id"],
            msg_type,
            shared.version,
            shared.model_dump(mode="json"),
            now,
        )
        subs = await conn.fetch(SUBSCRIBERS_REACHED, alert["alert_id"])
        return await self._deliver(conn, alert, shared, list(subs), now)

    async def _duty_phone(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, now: datetime
    ) -> str | None:
        """The phone of the child's authority's duty manager on call now, for the neighbours."""
        la = self.config.org(alert["local_authority"])
        changes = await rota_changes.for_resolving(conn, self.config, now)
        duty = on_duty_contacts(self.config, la, "duty_manager", now, changes)
        return duty[0].phone if duty else None

    def _build(
        self,
        alert,
        child,
        shared_id: uuid.UUID,
        msg_type: str,
        version: int,
        now: datetime,
        duty: str | None,
    ) -> SharedAlert:
        """The allow-listed content, and nothing else (the model refuses any other field)."""
        description = (child["description"] if child else None) or {}
        la = self.config.org(alert["local_authority"])
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
            # The ISO 639 names of the languages typed, never the typed text: a list of free
            # texts once carried a name and a nationality to the neighbours.
            languages=list(
                dict.fromkeys(
                    name
                    for typed in description.get("languages") or []
                    if (name := shared_language(typed))
                )
            ),
            last_seen_at=alert["anchor_at"],
            last_seen_location=alert["last_seen_location"],
            risk_level=RiskLevel(alert["risk_level"]),
            issuing_authority=alert["local_authority"],
            issuing_authority_name=(la.name or la.code) if la else alert["local_authority"],
            duty_number=duty,
        )

    async def _screened(
        self, conn: asyncpg.Connection, alert, shared: SharedAlert, now: datetime
    ) -> SharedAlert:
        """The shared alert with each text the screen withholds replaced, and the timeline told."""
        screened = {name: screen(getattr(shared, name)) for name in SCREENED_FIELDS}
        withheld = [name for name, s in screened.items() if s.withheld]
        if not withheld:
            return shared
        await record_withheld(conn, alert, "share", withheld, now, version=shared.version)
        return shared.model_copy(update={name: screened[name].text for name in withheld})

    async def _disable_departed(self, conn, alert, sub: asyncpg.Record, now: datetime) -> None:
        """A subscription whose organisation has left the directory: disabled, so an operator
        sees it, and skipped, so the other subscribers are still told."""
        log.warning(
            "subscription.org_departed",
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            subscription_id=str(sub["subscription_id"]),
            org_code=sub["org_code"],
        )
        await subscriptions.disable_if_active(conn, sub["subscription_id"], now)
        await audit(
            conn,
            "subscription.disabled",
            alert["child_id"],
            alert["alert_id"],
            {
                "subscription_id": str(sub["subscription_id"]),
                "org_code": sub["org_code"],
                "reason": LEFT_DIRECTORY,
            },
        )

    async def _deliver(self, conn, alert, shared: SharedAlert, subs: list, now: datetime):
        """Message rows for each subscription's contacts, channels and webhook."""
        sms, (subject, body) = sms_shared(shared, self.tz), email_shared(shared, self.tz)
        payload = shared.model_dump_json()
        key = step_key_for(shared)
        rows: list[Outgoing] = []
        delivered = []
        source = self.config.org(alert["local_authority"])
        for sub in subs:
            org = self.config.org(sub["org_code"])
            if org is None:
                await self._disable_departed(conn, alert, sub, now)
                continue
            # Asserted where the list is built, whatever the API already refused.
            if org.kind == OrgKind.immigration_enforcement:
                raise FirewallViolation(
                    f"subscription {sub['subscription_id']} of {sub['org_code']}"
                )
            if source is None or org.code not in source.neighbours:
                # The directory no longer lists this subscriber as the source's neighbour (the
                # rule the API applied when it subscribed): it is told no more of this source's
                # alerts, and its other sources are untouched.
                log.warning(
                    "subscription.not_a_neighbour",
                    alert_id=str(alert["alert_id"]),
                    child_id=alert["child_id"],
                    subscription_id=str(sub["subscription_id"]),
                    org_code=org.code,
                )
                continue
            delivered.append(sub)
            for contact in (c for c in org.contacts if c.id in set(sub["contacts"])):
                for channel in sub["channels"]:
                    address = contact.phone if channel == "sms" else str(contact.email)
                    text = ("", sms) if channel == "sms" else (subject, body)
                    rows.append(
                        Outgoing(
                            key,
                            contact.id,
                            org.code,
                            channel,
                            address,
                            *text,
                            subscription_id=sub["subscription_id"],
                        )
                    )
            if sub["webhook_url"]:
                rows.append(
                    Outgoing(
                        key,
                        f"sub-{sub['subscription_id']}",
                        org.code,
                        "webhook",
                        sub["webhook_url"],
                        "",
                        payload,
                        subscription_id=sub["subscription_id"],
                    )
                )
        inserted = await queue(conn, alert["alert_id"], alert["child_id"], rows, now)
        await audit(
            conn,
            f"shared_alert.{shared.msg_type.lower()}",
            alert["child_id"],
            alert["alert_id"],
            {
                "version": shared.version,
                "subscriptions": [str(s["subscription_id"]) for s in delivered],
            },
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
