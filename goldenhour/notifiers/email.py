"""Email channel: plain text over aiosmtplib, on a few SMTP connections kept open and reused."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

import aiosmtplib
import structlog
from aiosmtplib import (
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from goldenhour.notifiers.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    SendResult,
)

log = structlog.get_logger(__name__)

# `starttls`: upgrade after EHLO or send nothing; `tls`: TLS from the first byte (port 465);
# `off`: in clear, for a relay on the same host or network only.
TlsMode = Literal["starttls", "tls", "off"]


def message_id_for(idempotency_key: str) -> str:
    """Deterministic Message-ID, so every retry of one notification carries the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@goldenhour>"


def _one_line(text: str) -> str:
    """Header values must not carry line breaks (header injection, policy errors)."""
    return " ".join(text.splitlines()).strip()


def _untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind `exc`, however the SMTP client wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _connection_was_stale(exc: BaseException) -> bool:
    """Whether a failure on a reused connection means the connection, not the mail, was bad."""
    if isinstance(exc, SMTPResponseException):
        # 421: the server is closing this channel (idle limit, messages-per-connection limit).
        return exc.code == 421
    # A timeout is more likely a slow server than a dead socket; a second wait would only
    # delay the dispatcher's own retry.
    return isinstance(exc, (SMTPServerDisconnected, OSError)) and not isinstance(exc, TimeoutError)


async def _quit_quietly(client: aiosmtplib.SMTP) -> None:
    """Say goodbye if the server still listens; close the socket either way."""
    try:
        await client.quit(timeout=1)
    except (SMTPException, OSError):
        pass
    finally:
        client.close()


class SmtpEmail(Channel):
    """SMTP channel: "sent" once the server took the hand-off (250 after DATA); SMTP never says
    whether the mail reached an inbox, so it is never marked delivered.

    Up to max_connections connections are open at once; each carries one mail at a time and
    is reused for the next, since a new connection (TCP, EHLO, STARTTLS, AUTH) costs far more
    than the mail itself. A connection idle for longer than idle_s is not reused.

    Mail carries child data: with `tls="starttls"` (the default) a server that does not offer
    STARTTLS gets nothing, and certificates are always verified."""

    name = "email"
    reports_delivery = False

    def __init__(
        self,
        host: str,
        port: int,
        from_addr: str,
        username: str | None = None,
        password: str | None = None,
        tls: TlsMode = "starttls",
        ca_file: str | None = None,
        timeout: float = 10,
        max_connections: int = 4,
        idle_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.username = username
        self._password = password
        self.tls = tls
        self.ca_file = ca_file  # a private CA's bundle; None: the system's
        self.timeout = timeout
        self.max_connections = max_connections
        self.idle_s = idle_s
        # Most recently used last, each with its time.monotonic() of last use.
        self._idle: deque[tuple[aiosmtplib.SMTP, float]] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._loop: asyncio.AbstractEventLoop | None = None

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
        """Submit once (twice if a reused connection proves dead); 5xx and refused recipients →
        Permanent, 4xx and network → Retryable."""
        try:
            mail = self.build(msg)
        except (ValueError, TypeError) as exc:
            raise PermanentSendError(f"cannot build email to {msg.to!r}: {exc}") from exc
        ctx = {"notification_id": msg.notification_id, "message_id": mail["Message-ID"]}
        try:
            async with self._pool_slot():
                await self._submit(mail, msg.to, ctx)
        except SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            text = f"smtp refused {msg.to!r}: {codes}"
            # A 4xx refusal (greylisting, mailbox busy) is worth another try later.
            if codes and all(400 <= c < 500 for c in codes):
                raise RetryableSendError(text) from exc
            raise PermanentSendError(text, codes[0] if codes else None) from exc
        except SMTPResponseException as exc:
            text = f"smtp {exc.code}: {exc.message}"
            if exc.code >= 500:
                raise PermanentSendError(text, exc.code) from exc
            raise RetryableSendError(text) from exc
        except SMTPNotSupported as exc:
            # e.g. STARTTLS or AUTH demanded but not offered: configuration, not weather.
            raise PermanentSendError(f"smtp: {exc}") from exc
        except (SMTPException, OSError) as exc:  # TimeoutError is an OSError
            untrusted = _untrusted_certificate(exc)
            if untrusted is None:
                raise self._transport_error(exc) from exc
            raise PermanentSendError(
                f"smtp {self.host}:{self.port}: the server's certificate is not trusted"
                f" ({untrusted.verify_message}); set SMTP_CA_FILE for a private CA"
            ) from exc
        log.info("email.accepted", **ctx)
        return SendResult(provider_id=str(mail["Message-ID"]), status="sent")

    def _transport_error(self, exc: BaseException) -> RetryableSendError:
        """Connection refused/reset, disconnects and timeouts are all transient."""
        return RetryableSendError(f"smtp {self.host}:{self.port}: {exc!r}")

    def _pool_slot(self) -> asyncio.Semaphore:
        """The semaphore bounding open connections, for the running loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Connections and a semaphore from another (finished) loop cannot be used here.
            self._idle = deque()
            self._slots = asyncio.Semaphore(self.max_connections)
            self._loop = loop
        return self._slots

    async def _submit(self, mail: EmailMessage, to: str, ctx: dict[str, str]) -> None:
        """Send on an idle connection if there is one, else (or if it was stale) a new one."""
        client = self._take_idle()
        if client is not None:
            try:
                await self._send_on(client, mail, to)
                return
            except Exception as exc:
                if not _connection_was_stale(exc):
                    raise
                # Dropped by the server while idle: the alert must still go now; the
                # deterministic Message-ID makes a rare duplicate harmless.
                log.info("email.stale_connection", error=repr(exc), **ctx)
        await self._send_on(await self._connect(), mail, to)

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        """The most recently used connection still open and not idle too long, if any."""
        oldest_allowed = time.monotonic() - self.idle_s
        while self._idle and self._idle[0][1] < oldest_allowed:
            self._idle.popleft()[0].close()
        while self._idle:
            client, _ = self._idle.pop()
            if client.is_connected:
                return client
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new connection, greeted, in TLS as configured, and logged in.

        STARTTLS and AUTH are done here, not by the client's connect(): it would log in before
        an upgrade that may not happen, and treats a missing STARTTLS as a connection error."""
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=False,
            validate_certs=True,
            cert_bundle=self.ca_file,
            timeout=self.timeout,
        )
        await client.connect()  # closes the socket itself on failure
        try:
            if self.tls == "starttls":
                await self._start_tls(client)
            if self.username is not None:
                await client.login(self.username, self._password or "")
        except BaseException:
            client.close()
            raise
        return client

    async def _start_tls(self, client: aiosmtplib.SMTP) -> None:
        await client.ehlo()
        if not client.supports_extension("starttls"):
            raise SMTPNotSupported(
                f"{self.host}:{self.port} does not offer STARTTLS, and mail is never sent in"
                " clear (SMTP_TLS=off only for a local relay)"
            )
        await client.starttls()

    async def _send_on(self, client: aiosmtplib.SMTP, mail: EmailMessage, to: str) -> None:
        """Send one mail; the connection goes back to the pool only if that fully worked."""
        try:
            await client.send_message(mail, sender=self.from_addr, recipients=[to])
        except BaseException:
            # Even after a refusal the session may be mid-transaction; a new one is cheap.
            client.close()
            raise
        self._idle.append((client, time.monotonic()))

    async def poll(self, provider_id: str) -> str | None:
        """SMTP has no status to ask about."""
        return None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """SMTP keeps no sent log; receivers de-duplicate on the deterministic Message-ID."""
        return None

    async def close(self) -> None:
        """QUIT and close every idle connection (if this loop opened them); a later send just
        opens a new one."""
        idle, self._idle = self._idle, deque()
        if self._loop is asyncio.get_running_loop():
            await asyncio.gather(*(_quit_quietly(client) for client, _ in idle))
