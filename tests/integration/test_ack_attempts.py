"""Wrong acknowledgement codes are counted in PostgreSQL before they are checked: concurrent
guesses from one number, each on its own connection (as from several API replicas), cannot
race past the limit; replayed callbacks are claimed once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from goldenhour.services.ack_codes import PER_NUMBER, check_reply
from goldenhour.services.twilio_replays import first_delivery

PHONE = "+447700900001"


async def test_concurrent_wrong_codes_check_no_more_than_the_limit(migrated_db):
    conns = [await asyncpg.connect(migrated_db) for _ in range(4 * PER_NUMBER)]
    try:
        verdicts = await asyncio.gather(
            *(check_reply(c, PHONE, f"{i:06d}", ["lbh-duty"]) for i, c in enumerate(conns))
        )
        outcomes = [v.outcome for v in verdicts]
        assert outcomes.count("wrong") == PER_NUMBER
        assert outcomes.count("limited") == len(conns) - PER_NUMBER
        # Every try counts, checked or not; another number has a limit of its own.
        tries = await conns[0].fetchval(
            "SELECT count(*) FROM ack_attempts WHERE phone = $1 AND alert_id IS NULL", PHONE
        )
        assert tries == len(conns)
        other = await check_reply(conns[0], "+447700900010", "123456", ["mps-cr"])
        assert other.outcome == "wrong"
    finally:
        for c in conns:
            await c.close()


async def test_a_callback_is_claimed_once_and_handed_back_when_acting_fails(pool):
    url, form = "https://gh.example/api/v1/webhooks/twilio/status?n=1", {"MessageSid": "SM1"}
    try:
        async with first_delivery(pool, url, form) as first:
            assert first
            raise RuntimeError("the database went away mid-callback")
    except RuntimeError:
        pass
    async with first_delivery(pool, url, form) as retried:
        assert retried  # Twilio's retry of a callback we could not apply is applied
    async with first_delivery(pool, url, form) as replayed:
        assert not replayed
    async with first_delivery(pool, url, {"MessageSid": str(uuid.uuid4())}) as other:
        assert other
