"""The golden hour's firsts (last seen → first message sent, → first delivery) are decided by the
database, so each alert is counted once: not again when a provider reports twice, nor when one
report moves a row sent earlier with another, nor when several marks of one alert race."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import Histogram

from goldenhour.infra import metrics
from goldenhour.notifiers import db
from tests.integration.rows import CHILD, add_notification, open_alert, seed_child

ONWARD = ["sending", "sent"]


def observed(histogram: Histogram, authority: str = "LBH") -> float:
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels == {
                "kind": "missing",
                "authority": authority,
            }:
                return sample.value
    return 0.0


async def test_a_row_sent_earlier_beside_a_new_one_is_no_new_first(pool: asyncpg.Pool) -> None:
    """Nothing makes a provider id unique: one report may move two rows, one of them sent (and
    counted) a minute ago."""
    await seed_child(pool, CHILD, "P1")
    alert = await open_alert(pool, CHILD)
    earlier = await add_notification(pool, alert, contact="c1", status="sent")
    later = await add_notification(pool, alert, contact="c2", status="sending")
    await pool.execute(
        "UPDATE notifications SET provider_id = 'SM1', sent_at = now() - interval '1 minute'"
        " WHERE notification_id = $1",
        earlier,
    )
    await pool.execute(
        "UPDATE notifications SET provider_id = 'SM1' WHERE notification_id = $1", later
    )
    sent, delivered = observed(metrics.FIRST_NOTIFICATION), observed(metrics.FIRST_DELIVERY)
    assert len(await db.move_status(pool, None, "SM1", "delivered", None, ONWARD)) == 2
    assert observed(metrics.FIRST_NOTIFICATION) == sent  # the first was a minute ago
    assert observed(metrics.FIRST_DELIVERY) == delivered + 1


async def test_a_provider_reporting_delivery_twice_is_counted_once(pool: asyncpg.Pool) -> None:
    await seed_child(pool, CHILD, "P1")
    alert = await open_alert(pool, CHILD)
    note = await add_notification(pool, alert, contact="c1", status="sending")
    delivered = observed(metrics.FIRST_DELIVERY)
    await db.move_status(pool, note, None, "delivered", None, ONWARD)
    first_at = await pool.fetchval(
        "SELECT delivered_at FROM notifications WHERE notification_id = $1", note
    )
    await db.move_status(pool, note, None, "delivered", None, [*ONWARD, "delivered"])
    assert observed(metrics.FIRST_DELIVERY) == delivered + 1
    assert (
        await pool.fetchval(
            "SELECT delivered_at FROM notifications WHERE notification_id = $1", note
        )
        == first_at
    )


async def test_marks_of_one_alert_racing_count_it_once(pool: asyncpg.Pool) -> None:
    notes = []
    for i in range(10):
        child = f"LBH-2026-01{i:02d}"
        await seed_child(pool, child, f"P{i + 2}")
        alert = await open_alert(pool, child, ack_code=f"{1000 + i}")
        notes += [
            await add_notification(pool, alert, contact=f"c{j}", status="sending") for j in range(3)
        ]
    sent, delivered = observed(metrics.FIRST_NOTIFICATION), observed(metrics.FIRST_DELIVERY)
    await asyncio.gather(*(db.move_status(pool, n, None, "delivered", None, ONWARD) for n in notes))
    assert observed(metrics.FIRST_NOTIFICATION) - sent == 10
    assert observed(metrics.FIRST_DELIVERY) - delivered == 10
