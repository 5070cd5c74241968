"""A webhook subscription's health: its secret for signing, its run of failures, and disabling
it (with an email to its owner) when the run grows too long."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import structlog

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.oncall import on_duty_contacts
from goldenhour.infra import rota_changes, subscriptions
from goldenhour.infra.db import audit
from goldenhour.infra.notifications import Outgoing, queue
from goldenhour.notifiers import db

log = structlog.get_logger(__name__)


class WebhookSubscriptions:
    """What the dispatcher asks about the subscription behind a webhook delivery."""

    def __init__(self, pool: asyncpg.Pool, config: GoldenHourConfig, max_failures: int) -> None:
        self.pool = pool
        self.config = config
        self.max_failures = max_failures

    async def secret(self, row: asyncpg.Record) -> str | None:
        """The signing secret, or None when the subscription is no longer active."""
        sub = await self.pool.fetchrow(db.SUBSCRIPTION_SECRET, row["subscription_id"])
        return sub["webhook_secret"] if sub is not None and sub["status"] == "active" else None

    async def succeeded(self, row: asyncpg.Record) -> None:
        """A delivery went through: the run of failures is over."""
        async with self.pool.acquire() as conn:
            await subscriptions.reset_failures(conn, row["subscription_id"])

    async def failed(self, row: asyncpg.Record, error: str) -> list[uuid.UUID]:
        """Count a failed attempt; at the limit, disable the subscription and return the ids of
        the emails that tell its organisation's duty managers."""
        async with self.pool.acquire() as conn, conn.transaction():
            sub = await subscriptions.count_failure(conn, row["subscription_id"])
            if sub is None or sub["consecutive_failures"] < self.max_failures:
                return []
            now = datetime.now(UTC)
            await subscriptions.disable(conn, sub["subscription_id"], now)
            await audit(
                conn,
                "subscription.disabled",
                None,
                None,
                {
                    "subscription_id": str(sub["subscription_id"]),
                    "failures": sub["consecutive_failures"],
                    "error": error[:300],
                },
                actor="system:dispatcher",
            )
            log.warning(
                "subscription.disabled",
                subscription_id=str(sub["subscription_id"]),
                org=sub["org_code"],
                failures=sub["consecutive_failures"],
            )
            return await self._tell_owner(conn, sub, row, error, now)

    async def _tell_owner(self, conn, sub, row, error: str, now: datetime) -> list[uuid.UUID]:
        org = self.config.org(sub["org_code"])
        changes = await rota_changes.for_resolving(conn, self.config, now)
        owners = on_duty_contacts(self.config, org, "duty_manager", now, changes)
        subject = "Golden Hour: your shared-alert webhook was disabled"
        body = (
            f"The webhook subscription {sub['subscription_id']} of {sub['org_code']} to\n"
            f"{sub['webhook_url']}\nfailed {sub['consecutive_failures']} deliveries in a row "
            f"(last: {error[:200]}) and has been disabled.\n\n"
            "Shared alerts from neighbouring authorities no longer reach that address. Fix the\n"
            "receiver, then create the subscription again (POST /api/v1/subscriptions).\n"
        )
        step_key = f"subscription_disabled_{str(sub['subscription_id'])[:8]}"
        emails = [
            Outgoing(
                step_key,
                contact.id,
                sub["org_code"],
                "email",
                str(contact.email),
                subject,
                body,
                subscription_id=sub["subscription_id"],
            )
            for contact in owners
        ]
        queued = await queue(conn, row["alert_id"], row["child_id"], emails, now)
        return [r["notification_id"] for r in queued]
