"""The channels this deployment sends over, built from the settings."""

from __future__ import annotations

from infra.settings import Settings
from notifiers.base import Channel
from notifiers.email import SmtpEmail
from notifiers.sms import TwilioSms
from notifiers.webhook import WebhookChannel


def channels_from(settings: Settings) -> dict[str, Channel]:
    """SMS through Twilio (or a compatible server), email through SMTP, signed webhooks."""
    return {
        "sms": TwilioSms(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from_number,
            api_base_url=settings.twilio_api_base_url,
        ),
        "email": SmtpEmail(settings.smtp_host, settings.smtp_port, settings.smtp_from),
        "webhook": WebhookChannel(),
    }
