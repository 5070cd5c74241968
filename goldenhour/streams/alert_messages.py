"""An alert's message rows: what its steps and its stand-down queue for the dispatcher, and whom
the alert has told so far. Every row is queued through `infra.notifications.queue`, whose unique
key makes a repeat a no-op."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from goldenhour.contracts.alert_kinds import STAND_DOWN
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.derived import NotificationRequested
from goldenhour.infra.ack_links import AckLinks
from goldenhour.infra.notifications import Outgoing, queue
from goldenhour.streams.escalation import Delivery, Recipient
from goldenhour.streams.requests import requested
from goldenhour.streams.withholding import record_withheld
from goldenhour.wording import messages

VOICE_LIKE = ("sms", "voice")

# Every (contact, channel) an alert has reached or is reaching, in first-told order. A
# neighbour's subscriber hears only the minimised shared alert, never ours; and only those told
# by a step count, not by a failover or a notice that someone could not be reached.
# Those an alert's own messages reached, and those who hold it without one (briefed at a
# rota's handover, streams/handovers.py).
TOLD_BY_ALERT = """
SELECT contact_id, channel, min(first) AS first FROM (
    SELECT contact_id, channel, created_at AS first FROM notifications
    WHERE alert_id = $1 AND step_key <> $2 AND status <> 'cancelled'
      AND subscription_id IS NULL
      AND failover_of IS NULL AND step_key NOT LIKE 'unreachable.%'
    UNION ALL
    SELECT contact_id, channel, since FROM alert_holders WHERE alert_id = $1
) AS t
GROUP BY contact_id, channel ORDER BY first
"""


async def told(
    conn: asyncpg.Connection, config: GoldenHourConfig, alert_id: uuid.UUID
) -> list[tuple[Recipient, str]]:
    """Every (contact, channel) an alert has reached or is reaching, in first-told order."""
    rows = await conn.fetch(TOLD_BY_ALERT, alert_id, STAND_DOWN)
    out = []
    for r in rows:
        found = config.contact(r["contact_id"])
        if found is None:
            continue  # the contact has left the directory since
        org, contact = found
        out.append(
            (Recipient(contact.id, org.code, contact.phone, str(contact.email)), r["channel"])
        )
    return out


def _address(d: Delivery) -> str:
    return d.recipient.phone if d.channel in VOICE_LIKE else d.recipient.email


class AlertMessages:
    """Writes the message rows of one worker's alerts, worded for the child's own agencies."""

    def __init__(
        self, config: GoldenHourConfig, tz: ZoneInfo, ack_links: AckLinks | None = None
    ) -> None:
        self.config = config
        self.tz = tz
        self.ack_links = ack_links

    async def steps(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        planned: Sequence[Delivery],
        now: datetime,
        renotify_max: int = 0,
    ) -> list[NotificationRequested]:
        """The messages of the steps and re-notifications `planned` for the alert."""
        if not planned:
            return []
        facts = messages.alert_facts(alert, self.config)
        if any(d.channel in VOICE_LIKE for d in planned):
            await record_withheld(conn, alert, "sms", messages.withheld_from_sms(facts), now)
        out = []
        for d in planned:
            notification_id = uuid.uuid4()
            if d.channel == "sms":
                subject = ""
                body = messages.sms_alert(facts, d.step_key, now, self.tz, renotify_max)
            elif d.channel == "voice":
                subject = ""
                body = messages.voice_alert(facts, d.step_key, now, self.tz, renotify_max)
            else:
                link = self.ack_links.url(notification_id) if self.ack_links else None
                subject, body = messages.email_alert(
                    facts, d.step_key, now, self.tz, renotify_max, link
                )
            out.append(outgoing(d, subject, body, notification_id))
        return await self._queue(conn, alert, out, now)

    async def fixed(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        planned: Sequence[Delivery],
        texts: dict[str, tuple[str, str]],
        now: datetime,
    ) -> list[NotificationRequested]:
        """Messages whose (subject, body) by channel are given: the stand-down, the fallback."""
        out = [outgoing(d, *texts[d.channel]) for d in planned]
        return await self._queue(conn, alert, out, now)

    async def queued(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, out: list[Outgoing], now: datetime
    ) -> list[asyncpg.Record]:
        """The rows `queue` wrote for the alert (a message already queued is not among them)."""
        return await queue(conn, alert["alert_id"], alert["child_id"], out, now)

    async def _queue(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, out: list[Outgoing], now: datetime
    ) -> list[NotificationRequested]:
        return requested(alert, await self.queued(conn, alert, out, now), now)


def outgoing(
    d: Delivery, subject: str, body: str, notification_id: uuid.UUID | None = None
) -> Outgoing:
    """The message `d` says, with these words."""
    return Outgoing(
        step_key=d.step_key,
        contact_id=d.recipient.contact_id,
        org_code=d.recipient.org_code,
        channel=d.channel,
        address=_address(d),
        subject=subject,
        body=body,
        notification_id=notification_id or uuid.uuid4(),
    )
