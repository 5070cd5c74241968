"""Acknowledgement codes sent back by SMS: which alerts a number may acknowledge, and how many
wrong codes a number and an alert may be sent before replies stop being checked."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg

# A person mistyping a code gets it right within a few tries; five wrong in a quarter of an
# hour from one number is guessing. With 6-digit codes that leaves a guesser 20 tries an hour
# against a million codes.
PER_NUMBER = 5
# Every number that was told of an alert together: a guesser holding several told phones (or
# spoofing their numbers) is still held to a few tries; a busy alert's real contacts, each
# mistyping once or twice, stay well under.
PER_ALERT = 20
WINDOW = timedelta(minutes=15)

# Messages that told a contact of the alert itself, not of something around it: a shared
# alert (or its stand-down) reaches a neighbour's subscriber, a stand-down reaches everyone
# told, and a report that someone was unreachable reaches the people who must chase them.
# None of those makes the recipient one of the alert's own responders.
_TOLD = """
SELECT DISTINCT ON (a.alert_id) a.alert_id, a.child_id, a.ack_code, n.contact_id, n.org_code
FROM alerts a JOIN notifications n ON n.alert_id = a.alert_id
WHERE a.status <> 'resolved' AND n.contact_id = ANY($1)
  AND n.subscription_id IS NULL AND n.channel <> 'webhook'
  AND n.step_key <> 'stand_down' AND n.step_key NOT LIKE 'share%'
  AND n.step_key NOT LIKE 'unreachable.%' AND n.step_key NOT LIKE 'operations:%'
ORDER BY a.alert_id, n.created_at
"""
# Tries of one number (or at one alert) are counted one at a time, each after its own is
# written, so of any number of concurrent tries exactly the first few are checked. Locks
# are taken in one order, so two replies told of the same alerts never wait on each other.
_SERIALISE = (
    "SELECT pg_advisory_xact_lock(hashtextextended('ack_attempts:' || k, 0))"
    " FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys"
)
_RECORD_NUMBER = "INSERT INTO ack_attempts (attempt, phone, alert_id) VALUES ($1, $2, NULL)"
_COUNT_NUMBER = (
    "SELECT count(*) FROM ack_attempts"
    " WHERE phone = $1 AND alert_id IS NULL AND at > now() - $2::interval"
)
_RECORD_ALERTS = (
    "INSERT INTO ack_attempts (attempt, phone, alert_id) SELECT $1, $2, unnest($3::uuid[])"
)
_COUNT_ALERTS = (
    "SELECT alert_id, count(*) AS tries FROM ack_attempts"
    " WHERE alert_id = ANY($1) AND at > now() - $2::interval GROUP BY alert_id"
)
_FORGET = "DELETE FROM ack_attempts WHERE attempt = $1"
_PRUNE = "DELETE FROM ack_attempts WHERE at < now() - $1::interval"


@dataclass(frozen=True)
class ToldAlert:
    """An open alert whose own steps messaged one of the sender's contacts."""

    alert_id: uuid.UUID
    child_id: str
    ack_code: str
    contact_id: str
    org_code: str


@dataclass(frozen=True)
class Verdict:
    """What a reply's code does: acknowledge `alert`, nothing (wrong), or nothing (limited)."""

    outcome: Literal["acknowledge", "wrong", "limited"]
    alert: ToldAlert | None = None


def judge(
    code: str, told: Sequence[ToldAlert], number_tries: int, alert_tries: Mapping[uuid.UUID, int]
) -> Verdict:
    """Whether `code` acknowledges one of the alerts told, given the tries counted so far
    (this one included). A locked alert is never checked, so the answer cannot tell a right
    code for it from a wrong one."""
    if number_tries > PER_NUMBER:
        return Verdict("limited")
    open_to_tries = [t for t in told if alert_tries.get(t.alert_id, 0) <= PER_ALERT]
    for alert in open_to_tries:
        if hmac.compare_digest(alert.ack_code.encode(), code.encode()):
            return Verdict("acknowledge", alert)
    return Verdict("limited" if len(open_to_tries) < len(told) else "wrong")


async def told_alerts(conn: asyncpg.Connection, contact_ids: list[str]) -> list[ToldAlert]:
    """The open alerts these contacts were told of by the alerts' own steps."""
    return [ToldAlert(**dict(r)) for r in await conn.fetch(_TOLD, contact_ids)]


async def check_reply(
    conn: asyncpg.Connection, phone: str, code: str, contact_ids: list[str]
) -> Verdict:
    """Record the reply as a wrong try and count it, per number and then per alert told,
    before its code is checked: concurrent tries (on any API replica) cannot race past the
    limits. A right code takes its try back."""
    attempt = uuid.uuid4()
    async with conn.transaction():
        await conn.execute(_SERIALISE, [phone])
        await conn.execute(_RECORD_NUMBER, attempt, phone)
        number_tries = await conn.fetchval(_COUNT_NUMBER, phone, WINDOW)
    await conn.execute(_PRUNE, WINDOW)
    if number_tries > PER_NUMBER:
        return Verdict("limited")
    told = await told_alerts(conn, contact_ids)
    alert_ids = [t.alert_id for t in told]
    alert_tries: dict[uuid.UUID, int] = {}
    if alert_ids:
        async with conn.transaction():
            await conn.execute(_SERIALISE, [str(a) for a in alert_ids])
            await conn.execute(_RECORD_ALERTS, attempt, phone, alert_ids)
            rows = await conn.fetch(_COUNT_ALERTS, alert_ids, WINDOW)
        alert_tries = {r["alert_id"]: r["tries"] for r in rows}
    verdict = judge(code, told, number_tries, alert_tries)
    if verdict.outcome == "acknowledge":
        await conn.execute(_FORGET, attempt)
    return verdict
