"""The channels this deployment sends over, built from the settings."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from goldenhour.infra.settings import Settings
from goldenhour.notifiers import db
from goldenhour.notifiers.base import Channel, OutboundMessage, PermanentSendError, SendResult
from goldenhour.notifiers.email import SmtpEmail
from goldenhour.notifiers.sms import TwilioSms
from goldenhour.notifiers.voice import OwnedSids, RecordedSid, TwilioVoice
from goldenhour.notifiers.webhook import WebhookChannel

if TYPE_CHECKING:
    import asyncpg


def recorded_sid(pool: asyncpg.Pool) -> RecordedSid:
    """The provider id a callback or the call itself recorded on a message's row."""

    async def lookup(notification_id: str) -> str | None:
        return await pool.fetchval(db.PROVIDER_ID_OF, uuid.UUID(notification_id))

    return lookup


def owned_sids(pool: asyncpg.Pool) -> OwnedSids:
    """Which of these provider ids a message row already holds."""

    async def lookup(sids: list[str]) -> set[str]:
        rows = await pool.fetch(db.PROVIDER_IDS_HELD, sids)
        return {r["provider_id"] for r in rows}

    return lookup


TWILIO_OFF = "Twilio is switched off (GOLDENHOUR_TWILIO_ENABLED=false)"


class SwitchedOff:
    """A channel this deployment cannot send over. Each message fails for good at once, so
    the failover emails its contact and a contact nobody reached is reported, instead of the
    message waiting for a channel that never comes."""

    reports_delivery = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def send(self, msg: OutboundMessage) -> SendResult:
        raise PermanentSendError(self.reason)

    async def poll(self, provider_id: str) -> str | None:
        return None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        return None

    async def close(self) -> None:
        return None


def twilio_channels(settings: Settings, pool: asyncpg.Pool | None = None) -> dict[str, Channel]:
    """SMS and voice through Twilio (or a compatible server); both switched off unless Twilio
    is on with every credential set."""
    if not settings.twilio_ready:
        return {name: SwitchedOff(name, TWILIO_OFF) for name in ("sms", "voice")}
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
    }


def channels_from(settings: Settings, pool: asyncpg.Pool | None = None) -> dict[str, Channel]:
    """SMS and voice through Twilio (or a compatible server), email through SMTP, signed
    webhooks. With the pool, a voice retry finds the call its callbacks recorded."""
    return {
        **twilio_channels(settings, pool),
        "email": SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        ),
        "webhook": WebhookChannel(allow_private=settings.webhook_allow_private),
    }
