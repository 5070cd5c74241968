"""Mail is never sent in clear by accident: STARTTLS is required unless switched off, and the
server's certificate is verified (against SMTP_CA_FILE for a private CA)."""

from __future__ import annotations

import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.notifiers.base import OutboundMessage, PermanentSendError
from goldenhour.notifiers.email import SmtpEmail

FROM = "alerts@goldenhour.test"


def outbound() -> OutboundMessage:
    key = str(uuid.uuid4())
    return OutboundMessage(
        notification_id=key,
        to="duty@lbh.example",
        subject="Missing child LBH-2026-0042",
        body="A high-risk child is missing.",
        idempotency_key=key,
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the certificate is its own CA)."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def serve(tls_context: ssl.SSLContext | None = None) -> Iterator[LocalSmtp]:
    smtp = LocalSmtp(tls_context=tls_context)
    smtp.start()
    try:
        yield smtp
    finally:
        smtp.stop()


@pytest.fixture
def clear_only() -> Iterator[LocalSmtp]:
    """A server that does not offer STARTTLS."""
    yield from serve()


@pytest.fixture
def with_starttls(certificate: tuple[Path, Path]) -> Iterator[LocalSmtp]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    yield from serve(context)


async def test_starttls_required_sends_nothing_to_a_server_without_it(
    clear_only: LocalSmtp,
) -> None:
    email = SmtpEmail("127.0.0.1", clear_only.port, FROM, timeout=5)  # tls="starttls": default
    with pytest.raises(PermanentSendError) as refused:
        await email.send(outbound())
    assert "does not offer STARTTLS" in str(refused.value)
    assert "SMTP_TLS=off" in str(refused.value)
    assert clear_only.messages == []


async def test_starttls_with_a_trusted_certificate_sends(
    with_starttls: LocalSmtp, certificate: tuple[Path, Path]
) -> None:
    email = SmtpEmail("127.0.0.1", with_starttls.port, FROM, ca_file=str(certificate[0]), timeout=5)
    msg = outbound()
    result = await email.send(msg)
    await email.close()
    assert result.status == "sent"
    assert [m.subject for m in with_starttls.messages] == [msg.subject]


async def test_an_untrusted_certificate_gets_nothing(with_starttls: LocalSmtp) -> None:
    email = SmtpEmail("127.0.0.1", with_starttls.port, FROM, timeout=5)  # the system's CAs only
    with pytest.raises(PermanentSendError) as refused:
        await email.send(outbound())
    assert "certificate is not trusted" in str(refused.value)
    assert "SMTP_CA_FILE" in str(refused.value)
    assert with_starttls.messages == []


async def test_off_sends_in_clear_to_a_local_relay(clear_only: LocalSmtp) -> None:
    email = SmtpEmail("127.0.0.1", clear_only.port, FROM, tls="off", timeout=5)
    assert (await email.send(outbound())).status == "sent"
    await email.close()
    assert len(clear_only.messages) == 1


@pytest.fixture
def with_login(certificate: tuple[Path, Path]) -> Iterator[LocalSmtp]:
    """A submission server: STARTTLS, then a login it requires before any mail."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    smtp = LocalSmtp(tls_context=context, login=("goldenhour", "correct horse"))
    smtp.start()
    try:
        yield smtp
    finally:
        smtp.stop()


@pytest.mark.parametrize(
    ("login", "sent"),
    [(("goldenhour", "correct horse"), True), (("goldenhour", "wrong"), False), (None, False)],
    ids=["the account", "a wrong password", "no login"],
)
async def test_a_server_requiring_a_login_takes_mail_from_the_account_only(
    with_login: LocalSmtp,
    certificate: tuple[Path, Path],
    login: tuple[str, str] | None,
    sent: bool,
) -> None:
    username, password = login or (None, None)
    email = SmtpEmail(
        "127.0.0.1",
        with_login.port,
        FROM,
        username=username,
        password=password,
        ca_file=str(certificate[0]),
        timeout=5,
    )
    try:
        if sent:
            assert (await email.send(outbound())).status == "sent"
        else:
            # Configuration, not weather: no retry would ever succeed.
            with pytest.raises(PermanentSendError, match=r"smtp 5\d\d"):
                await email.send(outbound())
    finally:
        await email.close()
    assert len(with_login.messages) == (1 if sent else 0)
