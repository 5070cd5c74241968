"""A whole Golden Hour on one machine: the parts as processes, a local Twilio and a local SMTP.

Used by the end-to-end tests and by `make demo`. The directory is a small London one (Hackney,
Islington, the Met, a children's home, the national missing persons unit) with API keys made up
at start; the policy's minutes can be scaled down to seconds so a golden hour passes quickly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import httpx
import yaml

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.stack import free_port
from goldenhour.dev.supervisor import PARTS, PartProcess
from goldenhour.dev.twilio_local import LocalTwilio

TWILIO_SID = "AC" + "0" * 32
TWILIO_FROM = "+447700900999"

CONTACTS = {
    "LBH": [
        {
            "id": "lbh-duty",
            "role": "duty_manager",
            "phone": "+447700900001",
            "email": "duty@lbh.example",
        },
        {
            "id": "lbh-head",
            "role": "head_of_service",
            "phone": "+447700900002",
            "email": "head@lbh.example",
        },
        {
            "id": "lbh-sw",
            "role": "social_worker",
            "phone": "+447700900003",
            "email": "sw@lbh.example",
        },
    ],
    "LBI": [
        {
            "id": "lbi-duty",
            "role": "duty_manager",
            "phone": "+447700900101",
            "email": "duty@lbi.example",
        }
    ],
    "MPS": [
        {
            "id": "mps-cr",
            "role": "control_room",
            "phone": "+447700900010",
            "email": "cr@mps.example",
        },
        {
            "id": "mps-mpu",
            "role": "missing_persons_unit",
            "phone": "+447700900011",
            "email": "mpu@mps.example",
        },
    ],
    "OAK": [
        {"id": "oak-mgr", "role": "manager", "phone": "+447700900020", "email": "mgr@oak.example"}
    ],
    "UKMPU": [
        {
            "id": "ukmpu",
            "role": "missing_persons_unit",
            "phone": "+447700900030",
            "email": "mpu@ukmpu.example",
        }
    ],
}

USERS = {
    "LBH": [("lbh-dm1", "A. Duty", ["duty_manager"]), ("lbh-sw1", "S. Worker", ["social_worker"])],
    "LBI": [("lbi-dm1", "I. Duty", ["duty_manager"])],
    "MPS": [("mps-cr1", "C. Room", ["control_room"])],
    "OAK": [("oak-staff1", "N. Shift", ["care_staff"])],
    "ELM": [("elm-staff1", "E. Staff", ["care_staff"])],
}


# A high-risk child as the demo and the acceptance tests identify and place it.
IDENTIFIED = {
    "risk_level": "high",
    "local_authority": "LBH",
    "unaccompanied": True,
    "exploitation_types": ["criminal"],
    "description": {
        "age_estimate": 15,
        "gender": "male",
        "height_cm": 168,
        "clothing": "black puffer jacket",
        "languages": ["vi"],
    },
}


def placement(child_id: str, care_home: str = "OAK") -> dict:
    """The data of `placement.started` for a child at high risk, with hourly check-ins."""
    return {
        "placement_id": f"{child_id}-P1",
        "care_home": care_home,
        "risk": {"level": "high", "factors": ["recently identified", "trafficker known"]},
        "checkin_interval_minutes": 60,
    }


def _minutes(value: float, scale: float | None) -> str:
    """A policy duration of `value` minutes; with a scale, that many seconds per minute."""
    return f"{int(value)}m" if scale is None else f"{round(value * scale)}s"


def directory(
    scale: float | None = None,
    extra_unless_ack_step: bool = False,
    watchers: dict[str, str | int] | None = None,
) -> tuple[dict, dict]:
    """The config file's content and the made-up API key of every user.

    `scale` is seconds per policy minute (0.2 makes the golden hour 12 seconds); None is real time.
    `watchers` overrides keys of the `watchers:` block (e.g. `{"placement_within": "2s"}`).
    """
    keys: dict[str, str] = {}

    def users(code: str) -> list[dict]:
        out = []
        for user_id, name, roles in USERS.get(code, []):
            keys[user_id] = f"gh_{secrets.token_urlsafe(24)}"
            out.append(
                {
                    "id": user_id,
                    "name": name,
                    "roles": roles,
                    "api_key_sha256": hash_api_key(keys[user_id]),
                }
            )
        return out

    steps: list[dict[str, Any]] = [
        {
            "after": _minutes(0, scale),
            "notify": ["police.control_room", "local_authority.duty_manager", "care_home.manager"],
            "channels": ["sms", "email"],
        },
        {
            "after": _minutes(15, scale),
            "notify": ["police.missing_persons_unit", "local_authority.head_of_service"],
            "channels": ["sms", "email"],
            "unless_acknowledged": True,
        },
        {"after": _minutes(30, scale), "share": "neighbours"},
    ]
    if extra_unless_ack_step:
        steps.append(
            {
                "after": _minutes(45, scale),
                "notify": ["police.missing_persons_unit"],
                "channels": ["sms"],
                "unless_acknowledged": True,
            }
        )
    steps.append(
        {
            "after": _minutes(60, scale),
            "notify": ["national.missing_persons_unit"],
            "channels": ["sms", "email"],
        }
    )
    renotify = {"renotify_every": _minutes(10, scale), "renotify_max": 3}
    config = {
        "timezone": "Europe/London",
        "organisations": [
            {
                "code": "LBH",
                "kind": "local_authority",
                "name": "Hackney Children's Services",
                "police": "MPS",
                "neighbours": ["LBI"],
                "users": users("LBH"),
                "contacts": CONTACTS["LBH"],
            },
            {
                "code": "LBI",
                "kind": "local_authority",
                "name": "Islington Children's Services",
                "police": "MPS",
                "neighbours": ["LBH"],
                "users": users("LBI"),
                "contacts": CONTACTS["LBI"],
            },
            {
                "code": "MPS",
                "kind": "police",
                "name": "Metropolitan Police",
                "users": users("MPS"),
                "contacts": CONTACTS["MPS"],
            },
            {
                "code": "OAK",
                "kind": "care_home",
                "name": "Oak House",
                "local_authority": "LBH",
                "users": users("OAK"),
                "contacts": CONTACTS["OAK"],
            },
            {
                "code": "ELM",
                "kind": "care_home",
                "name": "Elm Lodge",
                "local_authority": "LBI",
                "users": users("ELM"),
                "contacts": [],
            },
            {
                "code": "UKMPU",
                "kind": "national",
                "name": "UK Missing Persons Unit",
                "contacts": CONTACTS["UKMPU"],
            },
        ],
        "policies": {"high": {**renotify, "steps": steps}},
        "watchers": dict(watchers or {}),
    }
    return config, keys


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
            # Test and demo webhook receivers listen on 127.0.0.1.
            "GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE": "1",
            # Scratch files of the parts (even of one killed mid-test) go with this directory.
            "TMPDIR": self._dir.name,
            **self.env_extra,
        }
        try:
            for part in PARTS:
                self.parts[part] = PartProcess(part, self.env).start()
            await self.wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the API answers ready with its relay active, and no part has died."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while asyncio.get_running_loop().time() < deadline:
                for part in self.parts.values():
                    if not part.alive():
                        raise RuntimeError(f"{part.part} exited early")
                try:
                    r = await client.get(f"{self.api_url}/readyz")
                    if (
                        r.status_code == 200
                        and r.json().get("outbox_relay_active")
                        and await self._workers_ready()
                    ):
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("API not ready in time")

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
        self.parts[part] = PartProcess(part, self.env).start()
        return self.parts[part]

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


def event(event_type: str, child_id: str, data: dict, at: datetime | None = None) -> dict:
    """An intake event envelope."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "schema_version": 1,
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
        "child_id": child_id,
        "data": data,
    }
