"""A local SMTP server on aiosmtpd that records every mail it accepts.

Besides answering normally it can refuse connections (nothing listens on its port) or accept
them and never answer (a black hole that holds every socket open), switched at run time by
`set_mode` or, for a server in its own process, over its control port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from goldenhour.dev.servers import free_port
from goldenhour.dev.waiting import wait_for_matches

log = structlog.get_logger(__name__)

Mode = Literal["normal", "refuse", "blackhole"]
MODES: tuple[Mode, ...] = ("normal", "refuse", "blackhole")


@dataclass
class ReceivedMail:
    """One mail as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    subject: str
    message_id: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    received_at: float = 0.0  # wall-clock time.time() when DATA completed


def _parse(envelope: Envelope) -> ReceivedMail:
    """Turn the raw DATA bytes into a ReceivedMail."""
    raw = envelope.original_content or envelope.content or b""
    if isinstance(raw, str):
        raw = raw.encode()
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(mail, EmailMessage):  # policy.default always parses to one
        raise TypeError(f"parsed mail is a {type(mail).__name__}, not an EmailMessage")
    part = mail.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    # The wire form is CRLF; readers (tests, logs) want the text as it was written.
    body = str(body).replace("\r\n", "\n")
    return ReceivedMail(
        mail_from=str(envelope.mail_from or ""),
        rcpt_tos=list(envelope.rcpt_tos),
        subject=str(mail.get("Subject", "")).strip(),
        message_id=str(mail.get("Message-ID", "")).strip(),
        body=str(body),
        # strip(): a header folded right after its colon parses with a leading space.
        headers={k: str(v).strip() for k, v in mail.items()},
        received_at=time.time(),
    )


class _Handler:
    """aiosmtpd handler: records mail, and rejects on request so clients meet real SMTP errors."""

    def __init__(self, owner: LocalSmtp) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        code = self.owner._rejected.get(address.lower())
        if code is not None:
            return f"{code} Recipient rejected: {address}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self.owner._take_failure()
        if failure is not None:
            return f"{failure} Requested action aborted: injected failure"
        mail = _parse(envelope)
        self.owner._record(mail)
        return "250 Message accepted for delivery"


class _TrackedSmtp(SMTP):
    """aiosmtpd's session, telling LocalSmtp when a client connection opens and closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.event_handler.owner._connection_opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.owner._connection_closed(self)


class _Controller(Controller):
    """aiosmtpd's Controller, serving _TrackedSmtp sessions."""

    def factory(self) -> SMTP:
        return _TrackedSmtp(self.handler, **self.SMTP_kwargs)


class LocalSmtp:
    """Threaded aiosmtpd server; .messages is safe to read from any thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: Callable[[ReceivedMail], None] | None = None,
        tls_context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_message = on_message
        # With a context the server offers STARTTLS, as a real relay does; without, it does not.
        self.tls_context = tls_context
        # With a login the server requires it, over TLS only, as a submission server does.
        self.login = login
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._failures: deque[int] = deque()
        self._rejected: dict[str, int] = {}
        self._open: set[SMTP] = set()
        self._connections = 0
        self._controller: Controller | None = None
        self._mode: Mode = "normal"
        self._mode_lock = threading.Lock()
        self._hole: _BlackHole | None = None

    @property
    def messages(self) -> list[ReceivedMail]:
        """Snapshot of received mail, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """Client connections accepted since start()."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._open)

    @property
    def mode(self) -> Mode:
        """How the server treats a connection now: answers, refuses, or holds it silently."""
        return self._mode

    def start(self) -> None:
        """Start the server thread; port 0 means pick a free port now."""
        if self.port == 0:
            # aiosmtpd's Controller needs a concrete port to self-test.
            self.port = free_port(self.host)
        with self._mode_lock:
            self._mode = "normal"
            self._start_controller()
        log.info("smtp_local.started", host=self.host, port=self.port)

    def stop(self) -> None:
        """Stop the server thread and unbind the port."""
        with self._mode_lock:
            self._stop_listeners()
        log.info("smtp_local.stopped", host=self.host, port=self.port)

    def set_mode(self, mode: Mode) -> None:
        """Answer normally, refuse connections, or accept them and never say a word.

        Switching closes the connections of the mode left, as a server restart would: a
        client's pooled connection then meets the new mode on its next attempt."""
        if mode not in MODES:
            raise ValueError(f"unknown SMTP mode {mode!r}; one of {', '.join(MODES)}")
        with self._mode_lock:
            if mode == self._mode:
                return
            self._stop_listeners()
            if mode == "normal":
                self._start_controller()
            elif mode == "blackhole":
                self._hole = _BlackHole(self.host, self.port)
            self._mode = mode
        log.info("smtp_local.mode", mode=mode, port=self.port)

    def _authenticate(
        self, _server: SMTP, _session: object, _envelope: object, _mechanism: str, data: object
    ) -> AuthResult:
        given = (
            (data.login.decode(), data.password.decode())
            if isinstance(data, LoginPassword)
            else None
        )
        ok = self.login is not None and given == self.login
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535 itself

    def _start_controller(self) -> None:
        # A fresh Controller each time: a stopped one has closed its event loop.
        auth = (
            {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": True}
            if self.login
            else {}
        )
        self._controller = _Controller(
            _Handler(self), hostname=self.host, port=self.port, tls_context=self.tls_context, **auth
        )
        self._controller.start()
        with self._lock:
            # Not the Controller's own start-up probe (it has connected by now).
            self._connections = 0
            self._open.clear()

    def _stop_listeners(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._hole is not None:
            self._hole.close()
            self._hole = None

    def fail_next(self, n: int, code: int = 451) -> None:
        """The next n DATA commands answer `code` (4xx transient, 5xx permanent)."""
        with self._lock:
            self._failures.extend([code] * n)

    def reject_recipient(self, address: str, code: int = 550) -> None:
        """RCPT TO address answers `code` from now on."""
        with self._lock:
            self._rejected[address.lower()] = code

    def clear(self) -> None:
        """Forget received mail and injected failures."""
        with self._lock:
            self._messages.clear()
            self._failures.clear()
            self._rejected.clear()

    def _connection_opened(self, session: SMTP) -> None:
        with self._lock:
            if session not in self._open:  # STARTTLS reports the same connection again
                self._connections += 1
                self._open.add(session)

    def _connection_closed(self, session: SMTP) -> None:
        with self._lock:
            self._open.discard(session)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
        if self._on_message is not None:
            self._on_message(mail)

    async def wait_for(
        self,
        predicate: Callable[[ReceivedMail], bool],
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[ReceivedMail]:
        """Poll until at least count match predicate; raise TimeoutError otherwise."""
        return await wait_for_matches(lambda: self.messages, predicate, timeout, count, "mails")


class _BlackHole:
    """Accepts TCP connections on a port and holds them open without ever reading or writing:
    a client waits for a greeting that never comes, as with a mail server stuck under load."""

    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(256)
        self._sock.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="smtp-blackhole", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed under us by close()
                return
            self._held.append(conn)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._held.clear()


def serve_control(server: LocalSmtp, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP control port for a server in its own process: `POST /mode` with
    `{"mode": "refuse"}` (or `normal`, `blackhole`) switches it; `GET /mode` says which."""

    class _Control(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/mode":
                return self._answer(404, {"error": f"no such path {self.path}"})
            self._answer(200, {"mode": server.mode})

        def do_POST(self) -> None:
            if self.path != "/mode":
                return self._answer(404, {"error": f"no such path {self.path}"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
                mode = json.loads(self.rfile.read(length) or b"{}").get("mode")
                server.set_mode(mode)
            except (ValueError, AttributeError) as exc:
                return self._answer(422, {"error": str(exc)})
            self._answer(200, {"mode": server.mode})

        def log_message(self, format: str, *args: Any) -> None:
            pass  # stdout carries the mail lines only

    httpd = ThreadingHTTPServer((host, port), _Control)
    threading.Thread(target=httpd.serve_forever, name="smtp-control", daemon=True).start()
    return httpd


def _print_json(mail: ReceivedMail) -> None:
    """One JSON line per mail on stdout, for an out-of-process reader."""
    record: dict[str, Any] = asdict(mail)
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: python -m goldenhour.dev.smtp_local --port P."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, help="serve POST /mode here (see above)")
    args = parser.parse_args(argv)
    # stdout carries only the JSON lines; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    server = LocalSmtp(args.host, args.port, on_message=_print_json)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    control = serve_control(server, args.host, args.control_port) if args.control_port else None
    # A JSON line too, so a reader can parse stdout uniformly.
    print(json.dumps({"event": "ready", "host": server.host, "port": server.port}), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if control is not None:
            control.shutdown()
        server.stop()


if __name__ == "__main__":
    main()
