"""A whole Golden Hour on one machine: the parts as processes, a local Twilio and a local SMTP.

Used by the end-to-end tests and by `make demo`, with a directory such as `london.directory()`.
It re-exports the London fixtures (`london.py`) that tests import from here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx
import yaml

from goldenhour.dev.parts import PARTS, PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually

TWILIO_SID = "AC" + "0" * 32
TWILIO_FROM = "+447700900999"
DEV_POOL_MAX = 16


@dataclass
class DevSystem:
    """The three parts as processes over a given Kafka and Postgres, with local providers."""

    kafka_bootstrap: str
    database_url: str
    config: dict
    keys: dict[str, str]
    env_extra: dict[str, str] = field(default_factory=dict)
    twilio: LocalTwilio = field(init=False)
    smtp: LocalSmtp = field(init=False)
    parts: dict[str, PartProcess] = field(default_factory=dict)
    api_url: str = ""
    # Scrapers of /metrics (API and workers' health ports) send it as a bearer token.
    metrics_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # When set, each part's log lines go to `<part>.log` here, for a test to read.
    log_dir: Path | None = None
    # The local providers, in this process; the benchmark swaps in processes of their own.
    twilio_server: ClassVar[type] = LocalTwilio
    smtp_server: ClassVar[type] = LocalSmtp

    async def start(self) -> DevSystem:
        """Start the providers and every part; return once the API is ready."""
        self._dir = tempfile.TemporaryDirectory(prefix="goldenhour-")
        config_path = Path(self._dir.name) / "goldenhour.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.twilio = self.twilio_server(TWILIO_SID, secrets.token_hex(16))
        await self.twilio.start()
        self.smtp = self.smtp_server()
        self.smtp.start()
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "GOLDENHOUR_CONFIG": str(config_path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GOLDENHOUR_DATABASE_URL": self.database_url,
            "GOLDENHOUR_API_PORT": str(port),
            "GOLDENHOUR_PUBLIC_URL": self.api_url,
            "GOLDENHOUR_SECRET_KEY": secrets.token_urlsafe(32),
            "GOLDENHOUR_TOPIC_PREFIX": f"gh-{uuid.uuid4().hex[:8]}",
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_FROM_NUMBER": TWILIO_FROM,
            "TWILIO_API_BASE_URL": self.twilio.base_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_FROM": "alerts@goldenhour.example",
            # The local SMTP server offers no STARTTLS; a real relay must (the default).
            "SMTP_TLS": "off",
            "GOLDENHOUR_METRICS_TOKEN": self.metrics_token,
            # Tests and the demo post in bursts with one key each; the limit's own test sets
            # a low one.
            "GOLDENHOUR_API_RATE_LIMIT": "1000/second",
            # The embedded broker's group join waits half of this: keep start-up quick.
            "GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S": "2",
            # One machine's three parts need fewer connections than a deployment's default.
            "GOLDENHOUR_DB_POOL_MAX": str(DEV_POOL_MAX),
            # Test and demo webhook receivers listen on 127.0.0.1.
            "GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE": "1",
            # Scratch files of the parts (even of one killed mid-test) go with this directory.
            "TMPDIR": self._dir.name,
            **self.env_extra,
        }
        try:
            for part in PARTS:
                self.parts[part] = PartProcess(part, self.env, self._log_path(part)).start()
            await self.wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the API answers ready with its relay active, and no part has died."""
        async with httpx.AsyncClient(timeout=1.0) as client:

            async def ready() -> bool:
                for part in self.parts.values():
                    if not part.alive():
                        raise RuntimeError(f"{part.part} exited early")
                try:
                    r = await client.get(f"{self.api_url}/readyz")
                except httpx.HTTPError:
                    return False
                return (
                    r.status_code == 200
                    and bool(r.json().get("outbox_relay_active"))
                    and await self._workers_ready()
                )

            try:
                await eventually(ready, timeout, "the API ready", every=0.1)
            except AssertionError:
                raise RuntimeError("API not ready in time") from None

    async def _workers_ready(self) -> bool:
        """Streams and dispatcher processes of this system hold their partitions."""
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT part, pid FROM worker_readiness")
        finally:
            await conn.close()
        ready = {(r["part"], r["pid"]) for r in rows}
        return all((name, p.pid) in ready for name, p in self.parts.items() if name != "api")

    async def stop(self) -> None:
        """Stop every process and server this system started."""
        for part in self.parts.values():
            await asyncio.to_thread(part.stop)
        await self.twilio.stop()
        self.smtp.stop()
        self._dir.cleanup()

    def restart(self, part: str) -> PartProcess:
        """Start a part again (after `kill`)."""
        self.parts[part] = PartProcess(part, self.env, self._log_path(part)).start()
        return self.parts[part]

    def _log_path(self, part: str) -> Path | None:
        return self.log_dir / f"{part}.log" if self.log_dir else None

    def metrics_headers(self) -> dict[str, str]:
        """What a Prometheus scraper of this system sends."""
        return {"Authorization": f"Bearer {self.metrics_token}"}

    def client(self, user_id: str) -> httpx.AsyncClient:
        """An HTTP client of the API holding one user's key."""
        return httpx.AsyncClient(
            base_url=f"{self.api_url}/api/v1",
            timeout=10.0,
            headers={"Authorization": f"Bearer {self.keys[user_id]}"},
        )
