"""Shared alerts on the real database: who receives them, what they hold, and nothing else."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.events import IntakeRecord, Submitter, parse_event
from goldenhour.contracts.shared import SHARED_FIELDS, SharedAlertPublished
from goldenhour.dev.london import IDENTIFIED, directory, event
from goldenhour.streams.clock_store import ClockStore
from goldenhour.streams.recipients import FirewallViolation
from goldenhour.streams.sharing import LEFT_DIRECTORY
from goldenhour.wording.screen import WITHHELD
from tests.integration.rows import seed_child

CHILD = "LBH-2026-0042"


def config(extra_org: dict | None = None) -> GoldenHourConfig:
    raw = directory(scale=0.2)[0]  # the share step falls due 6 s after last seen
    if extra_org:
        raw["organisations"].append(extra_org)
    return GoldenHourConfig.model_validate(raw)


@pytest.fixture(autouse=True)
async def seeded(pool: asyncpg.Pool) -> None:
    await seed_child(pool, CHILD, "P-1")
    await pool.execute(
        "UPDATE children SET exploitation_types = $2, description = $3 WHERE child_id = $1",
        CHILD,
        ["criminal"],
        IDENTIFIED["description"],
    )


def record(event_type: str, data: dict, child_id: str = CHILD) -> IntakeRecord:
    now = datetime.now(UTC)
    return IntakeRecord(
        event=parse_event(event(event_type, child_id, data), now),
        submitted_by=Submitter(org_code="OAK", user_id="oak-staff1"),
        received_at=now,
    )


async def subscribe(pool, org: str, **kw) -> uuid.UUID:
    sid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO subscriptions (subscription_id, org_code, created_by, source_authorities,"
        " min_risk, exploitation_types, contacts, channels, webhook_url, webhook_secret,"
        " created_at) VALUES ($1, $2, 'test', $3, $4, $5, $6, $7, $8, 's3cret', now())",
        sid,
        org,
        kw.get("sources", ["LBH"]),
        kw.get("min_risk", "low"),
        kw.get("types", []),
        kw.get("contacts", []),
        kw.get("channels", []),
        kw.get("url"),
    )
    return sid


async def run(pool, store: ClockStore, when: datetime):
    async with pool.acquire() as conn:
        return await store.claim_due(conn, when, 50)


async def open_missing(pool, store: ClockStore, seen: datetime, **data) -> None:
    data = {"last_seen_location": "Mare Street bus stop", **data}
    async with pool.acquire() as conn, conn.transaction():
        await store.on_absence(
            conn,
            record("absence.reported", {"last_seen_at": seen.isoformat(), **data}),
            max(seen, datetime.now(UTC)),
        )


async def test_share_step_reaches_each_matching_subscriber_once_with_the_allow_list(pool):
    store = ClockStore(config())
    lbi = await subscribe(
        pool, "LBI", contacts=["lbi-duty"], channels=["sms", "email"], url="http://127.0.0.1:9/hook"
    )
    too_high = await subscribe(
        pool, "LBI", min_risk="high", types=["sexual"], contacts=["lbi-duty"], channels=["sms"]
    )
    other_source = await subscribe(
        pool, "LBI", sources=["ELSEWHERE"], contacts=["lbi-duty"], channels=["sms"]
    )
    seen = datetime.now(UTC)
    await open_missing(pool, store, seen)
    out = await run(pool, store, seen + timedelta(seconds=7))
    published = [e for e in out.events if isinstance(e, SharedAlertPublished)]
    assert [p.shared.msg_type for p in published] == ["Alert"]
    rows = await pool.fetch("SELECT * FROM notifications WHERE subscription_id IS NOT NULL")
    assert {(r["subscription_id"], r["channel"]) for r in rows} == {
        (lbi, "sms"),
        (lbi, "email"),
        (lbi, "webhook"),
    }
    assert too_high not in {r["subscription_id"] for r in rows}
    assert other_source not in {r["subscription_id"] for r in rows}
    # The webhook body is the shared alert itself: its fields are the allow-list, no more.
    webhook = next(r for r in rows if r["channel"] == "webhook")
    assert set(json.loads(webhook["body"])) <= SHARED_FIELDS
    sms = next(r for r in rows if r["channel"] == "sms")["body"]
    assert CHILD in sms and "Mare Street" in sms and len(sms) <= 320
    # A second claim later shares nothing again.
    await run(pool, store, seen + timedelta(seconds=30))
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE subscription_id IS NOT NULL")
        == 3
    )


async def test_update_and_stand_down_reach_the_same_subscribers(pool):
    store = ClockStore(config())
    lbi = await subscribe(pool, "LBI", contacts=["lbi-duty"], channels=["sms"])
    seen = datetime.now(UTC) - timedelta(seconds=10)
    await open_missing(pool, store, seen)  # already past the share step: shared at once
    later = await subscribe(pool, "LBI", contacts=["lbi-duty"], channels=["email"])
    await open_missing(pool, store, seen - timedelta(minutes=1))  # an earlier sighting
    async with pool.acquire() as conn, conn.transaction():
        await store.on_located(
            conn,
            record(
                "child.located", {"located_at": datetime.now(UTC).isoformat(), "status": "returned"}
            ),
            datetime.now(UTC),
        )
    rows = await pool.fetch(
        "SELECT step_key, subscription_id FROM notifications WHERE subscription_id IS NOT NULL"
        " ORDER BY created_at"
    )
    assert [(r["step_key"], r["subscription_id"]) for r in rows] == [
        ("share_v1", lbi),
        ("share_v2", lbi),
        ("share_cancel", lbi),
    ]
    assert later not in {r["subscription_id"] for r in rows}
    shared = await pool.fetchrow("SELECT msg_type, version FROM shared_alerts")
    assert tuple(shared) == ("Cancel", 3)


async def test_a_subscription_of_immigration_enforcement_never_receives(pool):
    """The API refuses it; should a row exist anyway, delivery refuses it where it is built."""
    store = ClockStore(config({"code": "HOIE", "kind": "immigration_enforcement"}))
    await subscribe(pool, "HOIE")
    seen = datetime.now(UTC) - timedelta(seconds=10)
    await open_missing(pool, store, seen)
    assert not await pool.fetchval("SELECT count(*) FROM notifications WHERE org_code = 'HOIE'")
    # The child's own agencies were still told: sharing failed alone, loudly.
    first = store.config.policy_for("high").steps[0].key
    told = await pool.fetchval("SELECT count(*) FROM notifications WHERE step_key = $1", first)
    assert told == 6
    errors = await pool.fetch("SELECT detail FROM audit_log WHERE action = 'shared_alert.error'")
    assert errors and "FirewallViolation" in errors[0]["detail"]["error"]
    assert FirewallViolation.__name__ in errors[0]["detail"]["error"]


async def test_a_subscription_of_an_organisation_gone_from_the_directory_is_disabled_and_skipped(
    pool,
):
    """The others are still told; the departed one is disabled, audited, and told nothing."""
    store = ClockStore(config())
    gone = await subscribe(pool, "GONE", contacts=["gone-duty"], url="http://127.0.0.1:9/gone")
    lbi = await subscribe(pool, "LBI", contacts=["lbi-duty"], channels=["sms"])
    seen = datetime.now(UTC) - timedelta(seconds=10)
    await open_missing(pool, store, seen)
    rows = await pool.fetch("SELECT * FROM notifications WHERE subscription_id IS NOT NULL")
    assert {(r["subscription_id"], r["channel"]) for r in rows} == {(lbi, "sms")}
    status = await pool.fetchrow(
        "SELECT status, disabled_at FROM subscriptions WHERE subscription_id = $1", gone
    )
    assert status["status"] == "disabled" and status["disabled_at"] is not None
    audited = await pool.fetch(
        "SELECT detail FROM audit_log WHERE action = 'subscription.disabled'"
    )
    assert [a["detail"] for a in audited] == [
        {"subscription_id": str(gone), "org_code": "GONE", "reason": LEFT_DIRECTORY}
    ]
    assert not await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'shared_alert.error'"
    )
    shared = await pool.fetchrow("SELECT detail FROM audit_log WHERE action = 'shared_alert.alert'")
    assert shared["detail"]["subscriptions"] == [str(lbi)]


async def test_a_subscriber_the_source_no_longer_lists_as_a_neighbour_is_told_nothing(pool):
    """The API applied the neighbour rule when it subscribed; a directory that has since dropped
    the neighbour stops its shares of that source, and the other subscribers are still told."""
    raw = directory(scale=0.2)[0]
    raw["organisations"].append(
        {"code": "LBC", "kind": "local_authority", "name": "Camden", "police": "MPS",
         "contacts": [{"id": "lbc-duty", "role": "duty_manager", "phone": "+447700900099",
                       "email": "duty@lbc.example"}]}
    )  # fmt: skip
    store = ClockStore(GoldenHourConfig.model_validate(raw))  # LBH lists LBI, not LBC
    lbc = await subscribe(pool, "LBC", contacts=["lbc-duty"], channels=["sms"])
    lbi = await subscribe(pool, "LBI", contacts=["lbi-duty"], channels=["sms"])
    await open_missing(pool, store, datetime.now(UTC) - timedelta(seconds=10))
    rows = await pool.fetch("SELECT subscription_id FROM notifications WHERE subscription_id"
                            " IS NOT NULL")  # fmt: skip
    assert {r["subscription_id"] for r in rows} == {lbi}
    status = await pool.fetchval("SELECT status FROM subscriptions WHERE subscription_id = $1", lbc)
    assert status == "active"  # its other sources, should it have any, are untouched


FORBIDDEN_WORDS = ("Amira", "Tesfaye", "Eritrean", "NRM", "referral")


async def test_free_text_that_names_a_nationality_or_status_is_not_shared(pool):
    """The features stay in the record; a clothing that says "Eritrean" is withheld, and the
    alert's timeline says so."""
    description = {
        **IDENTIFIED["description"],
        "distinguishing_features": "Amira Tesfaye, Eritrean, NRM referral pending",
    }
    await pool.execute(
        "UPDATE children SET description = $2 WHERE child_id = $1", CHILD, description
    )
    store = ClockStore(config())
    await subscribe(
        pool, "LBI", contacts=["lbi-duty"], channels=["sms", "email"], url="http://127.0.0.1:9/hook"
    )
    seen = datetime.now(UTC) - timedelta(seconds=10)
    await open_missing(pool, store, seen, clothing="Eritrean football shirt")
    rows = await pool.fetch("SELECT * FROM notifications WHERE subscription_id IS NOT NULL")
    assert {r["channel"] for r in rows} == {"sms", "email", "webhook"}
    webhook = json.loads(next(r for r in rows if r["channel"] == "webhook")["body"])
    assert "distinguishing_features" not in webhook
    assert webhook["clothing"] == WITHHELD
    assert webhook["last_seen_location"] == "Mare Street bus stop"
    for row in rows:
        for word in (*FORBIDDEN_WORDS, "football"):
            assert word not in row["body"] and word not in row["subject"]
    payload = await pool.fetchval("SELECT payload FROM shared_alerts")
    assert "distinguishing_features" not in payload and payload["clothing"] == WITHHELD
    step = await pool.fetchrow("SELECT * FROM alert_steps WHERE step_key = 'withheld_share_v1'")
    assert step is not None and "clothing withheld from the shared alert" in step["detail"]
    # The child's own agencies are still told the clothing as given.
    own = await pool.fetch(
        "SELECT body FROM notifications WHERE subscription_id IS NULL AND channel = 'email'"
    )
    assert own and all("Eritrean football shirt" in r["body"] for r in own)


async def test_a_location_the_screen_withholds_is_not_in_the_police_sms(pool):
    store = ClockStore(config())
    place = "asylum hostel on Amhurst Road"
    seen = datetime.now(UTC)
    await open_missing(pool, store, seen, last_seen_location=place)
    sms = await pool.fetch("SELECT body FROM notifications WHERE channel = 'sms'")
    assert sms and all(WITHHELD in r["body"] and "asylum" not in r["body"] for r in sms)
    emails = await pool.fetch("SELECT body FROM notifications WHERE channel = 'email'")
    assert emails and all(place in r["body"] for r in emails)
    step = await pool.fetchrow("SELECT * FROM alert_steps WHERE step_key = 'withheld_sms'")
    assert step is not None and "last seen location withheld from SMS" in step["detail"]
    audited = await pool.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'alert.text_withheld'"
    )
    assert audited == {"step_key": "withheld_sms", "fields": ["last_seen_location"]}
