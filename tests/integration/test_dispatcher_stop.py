"""A stopping dispatcher gives its sends in flight a bounded time, starts no more, and what it
leaves is sent once by a replica. Real PostgreSQL, the real twilio library on the local
Twilio-compatible server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import asyncpg

from goldenhour.dev.waiting import eventually
from goldenhour.notifiers.dispatcher import Dispatcher
from goldenhour.notifiers.sms import TwilioSms
from tests.integration.providers import ACCOUNT, FROM, PUBLIC_URL, TOKEN
from tests.integration.rows import CHILD, open_alert
from tests.integration.rows import add_notification as add_row
from tests.integration.rows import notification as row

PHONES = ["+447700900101", "+447700900102", "+447700900103"]


def dispatcher(pool: asyncpg.Pool, sms: TwilioSms) -> Dispatcher:
    return Dispatcher(
        pool,
        {"sms": sms},
        PUBLIC_URL,
        repoll_after=timedelta(minutes=5),
        lease=timedelta(seconds=2),
        concurrency=1,  # one send in flight, the others waiting for its slot
        sweep_every_s=0.2,
        processing_allowance=timedelta(0),
    )


async def test_a_stop_cuts_a_hung_send_at_its_bound_and_a_replica_sends_each_message_once(
    pool, twilio
) -> None:
    """Twilio takes the first SMS and does not answer. The stop returns at its bound rather
    than when Compose or Kubernetes would kill the process, and starts none of the messages
    waiting for a slot; a replica sends those and, asking Twilio first, not the cut one again."""
    twilio.set_create_delay(12)  # past the client's 8 s timeout and the stop's 1 s bound
    alert = await open_alert(pool, CHILD)
    nids = [
        await add_row(pool, alert, address=phone, contact=f"c{i}") for i, phone in enumerate(PHONES)
    ]
    first = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=8)
    replica = TwilioSms(ACCOUNT, TOKEN, FROM, api_base_url=twilio.base_url, timeout=30)
    stopping = dispatcher(pool, first)
    try:
        await stopping.sweep(await pool.fetchval("SELECT now()"))
        await twilio.wait_for(lambda m: True, timeout=10)  # taken; its answer never comes
        started = time.monotonic()
        await stopping.stop(bound_s=1.0)
        stopped_in = time.monotonic() - started
        left = [await row(pool, nid) for nid in nids]
        twilio.set_create_delay(0)
        sweeper = dispatcher(pool, replica)
        task = asyncio.create_task(sweeper.sweep_forever())
        try:

            async def all_sent() -> list[asyncpg.Record]:
                rows = [await row(pool, nid) for nid in nids]
                assert all(r["status"] == "sent" for r in rows), [dict(r) for r in rows]
                return rows

            done = await eventually(all_sent, 60, "the replica to send every message")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sweeper.drain()
    finally:
        await first.close()
        await replica.close()
    assert stopped_in < 5, f"the stop waited {stopped_in:.1f}s for a send that never answers"
    assert [r["status"] for r in left].count("sending") == 1
    assert sorted(r["attempts"] for r in left) == [0, 0, 1], "a waiting message was started"
    assert [len(twilio.messages_to(phone)) for phone in PHONES] == [1, 1, 1]
    assert all(r["unverified_sends"] == 0 for r in done)
