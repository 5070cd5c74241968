"""A shared alert's message to a neighbouring authority's subscriber is data-minimised: when
Twilio does not take it, the failover must not follow it with a call and an email of the full
alert (circumstances, clothing, the placement's name, an acknowledgement link), which would
also make the subscriber one of the alert's own recipients for every re-notification. Real
PostgreSQL; the failover loop's own pass."""

from __future__ import annotations

import uuid

import asyncpg

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.notifiers.failover import Failover


async def test_a_stuck_shared_sms_is_not_followed_by_the_full_alert(pool: asyncpg.Pool) -> None:
    config = GoldenHourConfig.model_validate(directory()[0])
    alert_id, subscription_id, shared_sms = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO alerts (alert_id, child_id, kind, status, risk_level, policy, anchor_at,"
        " last_seen_location, circumstances, clothing, care_home, local_authority, ack_code,"
        " opened_at) VALUES ($1, 'LBH-2026-0042', 'missing', 'open', 'high', 'high',"
        " now() - interval '35 minutes', 'Mare Street', 'Went to meet a man from the car wash',"
        " 'black puffer jacket', 'OAK', 'LBH', '4821', now() - interval '35 minutes')",
        alert_id,
    )
    await pool.execute(
        "INSERT INTO subscriptions (subscription_id, org_code, created_by, source_authorities,"
        " contacts, channels, created_at)"
        " VALUES ($1, 'LBI', 'lbi-dm1', '{LBH}', '{lbi-duty}', '{sms}', now())",
        subscription_id,
    )
    # Twilio has not taken the shared alert's SMS for longer than sms_failover_after.
    await pool.execute(
        "INSERT INTO notifications (notification_id, alert_id, child_id, step_key, contact_id,"
        " org_code, channel, address, body, status, next_attempt_at, created_at, subscription_id)"
        " VALUES ($1, $2, 'LBH-2026-0042', 'share_v1', 'lbi-duty', 'LBI', 'sms', '+447700900101',"
        " 'MISSING CHILD (shared): case LBH-2026-0042', 'pending', now(),"
        " now() - interval '3 minutes', $3)",
        shared_sms,
        alert_id,
        subscription_id,
    )

    await Failover(pool, config).run_once()

    followed = await pool.fetch(
        "SELECT channel, body FROM notifications WHERE failover_of = $1", shared_sms
    )
    assert [(r["channel"], r["body"][:80]) for r in followed] == []
    assert not await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE contact_id = 'lbi-duty'"
        " AND subscription_id IS NULL"
    ), "the subscriber became a recipient of the alert itself"
