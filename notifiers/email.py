"""Email channel: one SMTP submission per attempt with aiosmtplib, plain text."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import structlog
from aiosmtplib import (
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    SendResult,
)

log = structlog.get_logger(__name__)


def message_id_for(idempotency_key: str) -> str:
    """Deterministic Message-ID, so every retry of one notification carries the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@goldenhour>"


def _one_line(text: str) -> str:
    """Header values must not carry line breaks (header injection, policy errors)."""
    return " ".join(text.splitlines()).strip()


class SmtpEmail(Channel):
    """SMTP channel: "sent" once the server took the hand-off (250 after DATA); SMTP never says
    whether the mail reached an inbox, so it is never marked delivered."""

    name = "email"
    reports_delivery = False

    def __init__(
        self,
        host: str,
        port: int,
        from_addr: str,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool | None = None,
        timeout: float = 10,
    ) -> None:
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.username = username
        self._password = password
        self.use_tls = use_tls
        self.start_tls = start_tls  # None: upgrade if the server offers STARTTLS
        self.timeout = timeout

    def build(self, msg: OutboundMessage) -> EmailMessage:
        """The plain-text message for msg, with de-duplication headers."""
        mail = EmailMessage()
        mail["From"] = self.from_addr
        mail["To"] = _one_line(msg.to)
        mail["Subject"] = _one_line(msg.subject)
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_for(msg.idempotency_key)
        mail["X-GoldenHour-Idempotency-Key"] = _one_line(msg.idempotency_key)
        mail["X-GoldenHour-Notification-Id"] = _one_line(msg.notification_id)
        # RFC 3834: stop out-of-office robots replying to an alert.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(msg.body)
        return mail

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Submit once; 5xx and refused recipients → Permanent, 4xx and network → Retryable."""
        try:
            mail = self.build(msg)
        except (ValueError, TypeError) as exc:
            raise PermanentSendError(f"cannot build email to {msg.to!r}: {exc}") from exc
        ctx = {"notification_id": msg.notification_id, "message_id": mail["Message-ID"]}
        try:
            await aiosmtplib.send(
                mail,
                sender=self.from_addr,
                recipients=[msg.to],
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            log.warning("email.recipient_refused", codes=codes, **ctx)
            text = f"smtp refused {msg.to!r}: {codes}"
            # A 4xx refusal (greylisting, mailbox busy) is worth another try later.
            if codes and all(400 <= c < 500 for c in codes):
                raise RetryableSendError(text) from exc
            raise PermanentSendError(text, codes[0] if codes else None) from exc
        except SMTPResponseException as exc:
            log.warning("email.smtp_error", code=exc.code, error=exc.message, **ctx)
            text = f"smtp {exc.code}: {exc.message}"
            if exc.code >= 500:
                raise PermanentSendError(text, exc.code) from exc
            raise RetryableSendError(text) from exc
        except SMTPNotSupported as exc:
            # e.g. STARTTLS or AUTH demanded but not offered: configuration, not weather.
            log.warning("email.not_supported", error=str(exc), **ctx)
            raise PermanentSendError(f"smtp: {exc}") from exc
        except (SMTPException, OSError, TimeoutError) as exc:
            # Connection refused/reset, disconnects and timeouts are all transient.
            log.warning("email.transport_error", error=repr(exc), **ctx)
            raise RetryableSendError(f"smtp {self.host}:{self.port}: {exc!r}") from exc
        log.info("email.accepted", **ctx)
        return SendResult(provider_id=str(mail["Message-ID"]), status="sent")

    async def poll(self, provider_id: str) -> str | None:
        """SMTP has no status to ask about."""
        return None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """SMTP keeps no sent log; receivers de-duplicate on the deterministic Message-ID."""
        return None

    async def close(self) -> None:
        """Nothing held open: each send uses its own short SMTP connection."""
        return None
