"""Two dispatcher processes whose clocks differ by 70 s send each SMS once: leases are the
database's clock and fenced by a claim token, so the one whose clock runs ahead cannot take over
a live lease mid-send. Real processes (`goldenhour dispatcher`, one under libfaketime), the
embedded broker and PostgreSQL, the local Twilio-compatible server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from goldenhour.dev.faketime import skewed
from goldenhour.dev.london import directory
from goldenhour.dev.parts import PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import migrate
from goldenhour.infra.topics import Topics, ensure_topics
from tests.integration.providers import ACCOUNT, FROM
from tests.integration.rows import open_alert

CHILD = "LBH-2026-0070"
PHONES = [f"+4477009005{i:02d}" for i in range(6)]
LEASE_S = 2
# Longer than the lease: every send is in flight when a lease written at send time expires.
CREATE_DELAY_S = 6
# A taker's look at Twilio would find nothing: only the fence keeps a second copy from going.
LIST_LAG_S = 30


@contextlib.asynccontextmanager
async def dispatchers(
    bootstrap: str, dsn: str, folder: Path, twilio: LocalTwilio, skews: list[float]
) -> AsyncIterator[list[PartProcess]]:
    """One dispatcher process per skew (seconds its clock is off; 0 for none), all ready;
    stopped afterwards whatever happened."""
    config_path = folder / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(directory(scale=1.0)[0], sort_keys=False))
    topics = Topics(f"gh-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics)
    base = {
        **os.environ,
        "GOLDENHOUR_CONFIG": str(config_path),
        "GOLDENHOUR_KAFKA_BOOTSTRAP": bootstrap,
        "GOLDENHOUR_DATABASE_URL": dsn,
        "GOLDENHOUR_TOPIC_PREFIX": topics.prefix,
        "GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S": "2",
        "GOLDENHOUR_SEND_LEASE_S": str(LEASE_S),
        "GOLDENHOUR_PUBLIC_URL": "http://127.0.0.1:9",  # callbacks fail fast: rows stay sent
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM_NUMBER": FROM,
        "TWILIO_API_BASE_URL": twilio.base_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "9",
        "SMTP_TLS": "off",
        "SMTP_FROM": "alerts@goldenhour.example",
        "TMPDIR": str(folder),
    }
    parts, ports = [], []
    try:
        for skew in skews:
            port = free_port()
            env = {**base, "GOLDENHOUR_HEALTH_PORT": str(port)}
            parts.append(PartProcess("dispatcher", skewed(env, skew) if skew else env).start())
            ports.append(port)
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready(part: PartProcess, port: int) -> bool:
                if not part.alive():
                    pytest.fail("a dispatcher exited")
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                return False

            async def all_ready() -> bool:
                return all(
                    [await ready(part, port) for part, port in zip(parts, ports, strict=True)]
                )

            await eventually(all_ready, 90, "the dispatchers to get ready", every=0.2)
        yield parts
    finally:
        for part in parts:
            await asyncio.to_thread(part.stop)


async def none_left(
    db: asyncpg.Connection, count: str, timeout: float, what: str, every: float
) -> None:
    """Wait until the `count` query counts no rows."""

    async def none() -> bool:
        left = await db.fetchval(count)
        assert left == 0, f"{left} rows left"
        return True

    await eventually(none, timeout, what, every=every)


@pytest.mark.parametrize("skew_s", [70, -70])
async def test_two_dispatchers_70s_apart_send_each_sms_once(
    stack, database_url, tmp_path, twilio, skew_s
) -> None:
    await migrate(database_url)
    twilio.set_create_delay(CREATE_DELAY_S)
    twilio.set_list_lag(LIST_LAG_S)
    twilio.set_callbacks(False)
    async with dispatchers(
        stack.kafka_bootstrap, database_url, tmp_path, twilio, [0, skew_s]
    ) as parts:
        # The one whose clock says a lease written by the other has expired waits, paused,
        # until the other holds every message mid-send: then it is let go.
        holder, taker = (parts[0], parts[1]) if skew_s > 0 else (parts[1], parts[0])
        os.kill(taker.pid, signal.SIGSTOP)
        db = await asyncpg.connect(database_url)
        try:
            alert_id = await open_alert(db, CHILD, ack_code="7070")
            # Straight into the table, no Kafka event: both dispatchers' sweeps race for each.
            # Due minutes ago, so even the dispatcher whose clock is behind finds them due
            # (written just now: no failover to a call is due yet).
            await db.execute(
                "INSERT INTO notifications (notification_id, alert_id, child_id, step_key,"
                " contact_id, org_code, channel, address, subject, body, status,"
                " next_attempt_at, created_at)"
                " SELECT gen_random_uuid(), $1, 'LBH-2026-0070', 's0', 'c' || i, 'MPS', 'sms',"
                " phone, '', 'ALERT LBH-2026-0070 missing. Ack 7070', 'pending',"
                " now() - interval '5 minutes', now()"
                " FROM unnest($2::text[]) WITH ORDINALITY AS p(phone, i)",
                alert_id,
                PHONES,
            )
            try:
                await none_left(
                    db,
                    "SELECT count(*) FROM notifications WHERE status <> 'sending'",
                    30,
                    "the holder to claim every SMS",
                    every=0.05,
                )
            finally:
                os.kill(taker.pid, signal.SIGCONT)
            assert holder.alive()
            await none_left(
                db,
                "SELECT count(*) FROM notifications WHERE channel = 'sms'"
                " AND status NOT IN ('sent', 'delivered')",
                60,
                "every SMS to be sent",
                every=0.2,
            )
            # Long enough for any taker of a lease it thought expired to have sent again.
            await asyncio.sleep(CREATE_DELAY_S + LEASE_S + 2)
            rows = await db.fetch(
                "SELECT * FROM notifications WHERE channel = 'sms' ORDER BY contact_id"
            )
        finally:
            await db.close()
    at_provider = Counter(m.to for m in twilio.messages)
    assert at_provider == Counter(PHONES), f"sent twice or never: {at_provider}"
    by_phone = {m.to: m.sid for m in twilio.messages}
    assert {r["address"]: r["provider_id"] for r in rows} == by_phone
    assert {r["status"] for r in rows} <= {"sent", "delivered"}
