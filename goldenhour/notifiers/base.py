"""The one small interface every notification channel (SMS, voice, email, webhook) implements,
and the errors the notifiers raise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "retry_after_seconds",
    "Channel",
    "ChannelError",
    "LookFailed",
    "NotifierError",
    "OutboundMessage",
    "PermanentSendError",
    "RetryableSendError",
    "SendResult",
]


@dataclass(frozen=True)
class OutboundMessage:
    """One notification to one contact on one channel, as the dispatcher hands it over."""

    notification_id: str  # our id (uuid text)
    idempotency_key: str  # "<alert_id>:<step_key>:<contact_id>:<channel>"
    to: str  # E.164 phone or email address
    subject: str  # email only ("" for the others)
    body: str
    status_callback_url: str | None = None  # sms only
    # For the reconcile: how long before this attempt the message was first handed to the
    # provider (else written), by the database's clock. No copy at the provider is older.
    tried_for: timedelta | None = None
    signing_secret: str | None = None  # webhook only: the subscription's HMAC secret


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str  # Twilio SID, email Message-ID, or our own id for a webhook
    # "sent" once the provider took the message; "delivered" only when its answer already says
    # so (an SMS Twilio reports delivered at once). Email and webhooks are never "delivered":
    # neither SMTP's 250 nor a receiver's 2xx says a person has the message.
    status: str


class NotifierError(Exception):
    """Root of every error the notifiers raise."""


class ChannelError(NotifierError):
    """Root of every error a channel raises."""


class RetryableSendError(ChannelError):
    """Transient failure (429, 5xx, connection error, timeout): try again later."""

    def __init__(
        self, message: str, retry_after: float | None = None, ambiguous: bool = False
    ) -> None:
        super().__init__(message)
        # The provider's Retry-After in seconds, so the dispatcher's backoff can honour it.
        self.retry_after = retry_after
        # The request may have reached the provider and still be acted on (a timeout or a
        # reset after it was written, a 5xx other than 503): before any resend, the provider is
        # asked whether it has the message, once it has had time to finish creating it.
        self.ambiguous = ambiguous


class LookFailed(RetryableSendError):
    """The provider could not say whether an earlier attempt left it the message."""

    def __init__(self, cause: RetryableSendError) -> None:
        super().__init__(str(cause), cause.retry_after)


class PermanentSendError(ChannelError):
    """Failure that retrying cannot fix (invalid number, rejected recipient, bad credentials)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        # Provider error code (Twilio code or SMTP reply code), kept for the audit trail.
        self.code = code


@runtime_checkable
class Channel(Protocol):
    """A way to reach a person; one attempt per send, the caller owns retries and idempotency."""

    name: str  # "sms" | "voice" | "email" | "webhook"
    # Whether the provider later reports delivery (callbacks, poll); a message it accepted is
    # "sent" until then.
    reports_delivery: bool

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Hand msg to the provider once; raise RetryableSendError or PermanentSendError."""
        ...

    async def poll(self, provider_id: str) -> str | None:
        """Provider's current status ("queued", "sent", "delivered", ...) or None if unknown."""
        ...

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """provider_id of an already-sent copy of msg (crash recovery), else None."""
        ...

    async def close(self) -> None:
        """Release connections and sessions."""
        ...


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header value (delta-seconds or HTTP date), if any."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
