"""The channels this deployment sends over, built from the settings."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from infra.settings import Settings
from notifiers.base import Channel
from notifiers.email import SmtpEmail
from notifiers.sms import TwilioSms
from notifiers.voice import OwnedSids, RecordedSid, TwilioVoice
from notifiers.webhook import WebhookChannel

if TYPE_CHECKING:
    import asyncpg


def recorded_sid(pool: asyncpg.Pool) -> RecordedSid:
    """The provider id a callback or the call itself recorded on a message's row."""

    async def lookup(notification_id: str) -> str | None:
        return await pool.fetchval(
            "SELECT provider_id FROM notifications WHERE notification_id = $1",
            uuid.UUID(notification_id),
        )

    return lookup


def owned_sids(pool: asyncpg.Pool) -> OwnedSids:
    """Which of these provider ids a message row already holds."""

    async def lookup(sids: list[str]) -> set[str]:
        rows = await pool.fetch(
            "SELECT provider_id FROM notifications WHERE provider_id = ANY($1)", sids
        )
        return {r["provider_id"] for r in rows}

    return lookup


def channels_from(settings: Settings, pool: asyncpg.Pool | None = None) -> dict[str, Channel]:
    """SMS and voice through Twilio (or a compatible server), email through SMTP, signed
    webhooks. With the pool, a voice retry finds the call its callbacks recorded."""
    twilio = (settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number)
    return {
        "sms": TwilioSms(*twilio, api_base_url=settings.twilio_api_base_url),
        "voice": TwilioVoice(
            *twilio,
            settings.public_url,
            api_base_url=settings.twilio_api_base_url,
            recorded_sid=recorded_sid(pool) if pool is not None else None,
            owned_sids=owned_sids(pool) if pool is not None else None,
        ),
        "email": SmtpEmail(settings.smtp_host, settings.smtp_port, settings.smtp_from),
        "webhook": WebhookChannel(),
    }
