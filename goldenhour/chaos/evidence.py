"""The evidence of a chaos run: what the database holds at its end, read in one snapshot.

The database says which messages were due (its notification rows and decided steps) and which
events were applied; the checks weigh it against what the providers received.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from goldenhour.infra.topics import CLOCK_CONSUMER as CONSUMER
from goldenhour.notifiers.email import message_id_for

__all__ = ["CONSUMER", "Evidence", "Note", "Step", "collect"]

# A timer this far past due at the end of the run was never decided.
OVERDUE_GRACE_S = 5.0


@dataclass(frozen=True)
class Note:
    """One notification row: a message the system decided was due."""

    notification_id: str
    alert_id: str | None
    child_id: str | None
    step_key: str
    contact_id: str
    channel: str
    status: str
    created_at: float = 0.0
    failover_of: str | None = None
    unreachable_told_at: float | None = None
    # Times it was sent again unverified: the provider could not say whether it had it.
    unverified_sends: int = 0

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        return (self.alert_id, self.step_key, self.contact_id, self.channel)

    @property
    def message_id(self) -> str:
        """The Message-ID its mail carries (the dispatcher's deterministic one)."""
        return message_id_for(":".join(str(k) for k in self.key))


@dataclass(frozen=True)
class Step:
    """One decided escalation step."""

    alert_id: str
    child_id: str
    step_key: str
    status: str
    due_at: float  # epoch seconds, by the database's clock
    decided_at: float
    policy: str = "high"


@dataclass
class Evidence:
    """What the database holds at the end of a run."""

    applied: dict[str, float] = field(default_factory=dict)  # event_id -> processed_at
    dead_events: set[str] = field(default_factory=set)
    poison_found: dict[str, float] = field(default_factory=dict)  # marker -> dead-lettered at
    dead_letters: int = 0
    notes: list[Note] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    overdue: list[tuple[str, str, float]] = field(default_factory=list)  # alert, child, late s
    clock_failures: int = 0


async def collect(conn: asyncpg.Connection, markers: Iterable[str]) -> Evidence:
    """Read the evidence in one repeatable-read snapshot."""
    ev = Evidence()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for r in await conn.fetch(
            "SELECT event_id::text, extract(epoch FROM processed_at)::float8 AS at"
            " FROM processed_events WHERE consumer = $1",
            CONSUMER,
        ):
            ev.applied[r["event_id"]] = r["at"]
        ev.dead_events = {
            r[0]
            for r in await conn.fetch(
                "SELECT DISTINCT event_id::text FROM dead_letters WHERE event_id IS NOT NULL"
            )
        }
        ev.dead_letters = await conn.fetchval("SELECT count(*) FROM dead_letters")
        ev.poison_found = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT m, min(extract(epoch FROM d.failed_at))::float8"
                " FROM unnest($1::text[]) AS m JOIN dead_letters d"
                " ON position(convert_to(m, 'UTF8') IN d.raw) > 0 GROUP BY m",
                list(markers),
            )
        }
        ev.notes = [
            Note(**dict(r))
            for r in await conn.fetch(
                "SELECT notification_id::text, alert_id::text, child_id, step_key, contact_id,"
                " channel, status, extract(epoch FROM created_at)::float8 AS created_at,"
                " failover_of::text,"
                " extract(epoch FROM unreachable_told_at)::float8 AS unreachable_told_at,"
                " unverified_sends FROM notifications"
            )
        ]
        ev.steps = [
            Step(**dict(r))
            for r in await conn.fetch(
                "SELECT s.alert_id::text, a.child_id, s.step_key, s.status,"
                " extract(epoch FROM s.due_at)::float8 AS due_at,"
                " extract(epoch FROM s.decided_at)::float8 AS decided_at,"
                " coalesce(s.policy, a.policy) AS policy"
                " FROM alert_steps s JOIN alerts a USING (alert_id)"
            )
        ]
        ev.overdue = [
            (r["alert_id"], r["child_id"], r["late"])
            for r in await conn.fetch(
                "SELECT alert_id::text, child_id,"
                " extract(epoch FROM now() - next_due_at)::float8 AS late FROM alerts"
                " WHERE status <> 'resolved' AND next_due_at < now() - make_interval(secs => $1)",
                OVERDUE_GRACE_S,
            )
        ]
        ev.clock_failures = await conn.fetchval(
            "SELECT coalesce(sum(clock_failures), 0) FROM alerts"
        )
    return ev
