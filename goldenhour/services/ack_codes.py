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

from goldenhour.services import db

# A person mistyping a code gets it right within a few tries; five wrong in a quarter of an
# hour from one number is guessing. With 6-digit codes that leaves a guesser 20 tries an hour
# against a million codes.
PER_NUMBER = 5
# Every number that was told of an alert together: a guesser holding several told phones (or
# spoofing their numbers) is still held to a few tries; a busy alert's real contacts, each
# mistyping once or twice, stay well under.
PER_ALERT = 20
WINDOW = timedelta(minutes=15)


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
    return [ToldAlert(**dict(r)) for r in await conn.fetch(db.ALERTS_TOLD_TO, contact_ids)]


async def check_reply(
    conn: asyncpg.Connection, phone: str, code: str, contact_ids: list[str]
) -> Verdict:
    """Record the reply as a wrong try and count it, per number and then per alert told,
    before its code is checked: concurrent tries (on any API replica) cannot race past the
    limits. A right code takes its try back."""
    attempt = uuid.uuid4()
    async with conn.transaction():
        await conn.execute(db.SERIALISE_ACK_TRIES, [phone])
        await conn.execute(db.RECORD_NUMBER_TRY, attempt, phone)
        number_tries = await conn.fetchval(db.COUNT_NUMBER_TRIES, phone, WINDOW)
    await conn.execute(db.PRUNE_ACK_TRIES, WINDOW)
    if number_tries > PER_NUMBER:
        return Verdict("limited")
    told = await told_alerts(conn, contact_ids)
    alert_ids = [t.alert_id for t in told]
    alert_tries: dict[uuid.UUID, int] = {}
    if alert_ids:
        async with conn.transaction():
            await conn.execute(db.SERIALISE_ACK_TRIES, [str(a) for a in alert_ids])
            await conn.execute(db.RECORD_ALERT_TRIES, attempt, phone, alert_ids)
            rows = await conn.fetch(db.COUNT_ALERT_TRIES, alert_ids, WINDOW)
        alert_tries = {r["alert_id"]: r["tries"] for r in rows}
    verdict = judge(code, told, number_tries, alert_tries)
    if verdict.outcome == "acknowledge":
        await conn.execute(db.FORGET_ACK_TRY, attempt)
    return verdict
