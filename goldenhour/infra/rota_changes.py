"""A rota's changes in Postgres (`rota_changes`): overrides, swaps and temporary schedules, read
back as `oncall.Changes` for resolution and written, checked and audited, for the API and the
console. The one writer of `rota_changes`.

A change is made in a transaction holding the rota's advisory lock, so two managers adding
overlapping overrides at once cannot both pass the clash check. No change reaches back before
it was made, and withdrawing one that has started ends it then: who was on call is the record
of who was paged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.oncall import Changes, Override, Shift, Temporary
from goldenhour.contracts.rota_api import OverrideRequest, TemporaryRequest
from goldenhour.infra.db import audit

__all__ = [
    "Clash",
    "Unknown",
    "active_at",
    "add",
    "between",
    "for_resolving",
    "take_swap",
    "withdraw",
]

_ACTIVE_AT = """
SELECT * FROM rota_changes
WHERE status = 'active' AND start_at <= $1 AND end_at > $1
ORDER BY created_at, change_id
"""

_BETWEEN = """
SELECT * FROM rota_changes
WHERE rota_id = $1 AND status = ANY($4::text[]) AND start_at < $3 AND end_at > $2
ORDER BY created_at, change_id
"""

_INSERT = """
INSERT INTO rota_changes (change_id, rota_id, org_code, kind, action, member, by_member, shifts,
                          start_at, end_at, status, reason, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING *
"""


class Clash(Exception):
    """A change that overlaps ones it may not (`_clashes`), which `rows` holds."""

    def __init__(self, rows: list[asyncpg.Record]) -> None:
        super().__init__(f"clashes with {len(rows)} change(s)")
        self.rows = rows


class Unknown(Exception):
    """No such change of this rota, or one no longer in the state the request needs."""


@dataclass(frozen=True)
class NewChange:
    """A change as the API checked it, to store."""

    kind: str  # override, swap, temporary
    start: datetime
    end: datetime
    action: str | None = None
    member: str | None = None
    by: str | None = None
    shifts: tuple[Shift, ...] = ()
    reason: str | None = None

    @classmethod
    def override(cls, body: OverrideRequest) -> NewChange:
        """An override as the API or the console's form asked it."""
        return cls(
            "override", body.start, body.end, body.action, body.member, body.by, reason=body.reason
        )

    @classmethod
    def temporary(cls, body: TemporaryRequest) -> NewChange:
        """A temporary schedule as the API or the console's form asked it."""
        shifts = tuple(Shift(s.start, s.end, s.member) for s in body.shifts)
        return cls("temporary", body.start, body.end, shifts=shifts, reason=body.reason)

    @property
    def people(self) -> set[str]:
        if self.kind == "temporary":
            return set()
        return {p for p in (self.member, self.by) if p is not None}


def _override(row: asyncpg.Record) -> Override:
    return Override(row["start_at"], row["end_at"], row["action"], row["member"], row["by_member"])


def _shifts(row: asyncpg.Record) -> tuple[Shift, ...]:
    return tuple(
        Shift(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]), s["member"])
        for s in row["shifts"]
    )


def changes(rows: Iterable[asyncpg.Record]) -> dict[str, Changes]:
    """Active change rows as each rota's `Changes`, overrides in the order they were made."""
    overrides: dict[str, list[Override]] = {}
    temporaries: dict[str, list[Temporary]] = {}
    for row in rows:
        if row["status"] != "active":
            continue
        if row["kind"] == "temporary":
            temporaries.setdefault(row["rota_id"], []).append(
                Temporary(row["start_at"], row["end_at"], _shifts(row))
            )
        else:
            overrides.setdefault(row["rota_id"], []).append(_override(row))
    return {
        rota_id: Changes(tuple(overrides.get(rota_id, ())), tuple(temporaries.get(rota_id, ())))
        for rota_id in overrides.keys() | temporaries.keys()
    }


async def active_at(conn: asyncpg.Connection | asyncpg.Pool, at: datetime) -> dict[str, Changes]:
    """Every rota's changes active at `at`, by rota id: what resolution at `at` needs."""
    return changes(await conn.fetch(_ACTIVE_AT, at))


async def for_resolving(
    conn: asyncpg.Connection, config: GoldenHourConfig, at: datetime
) -> dict[str, Changes]:
    """`active_at`, without asking Postgres where the directory has no rota."""
    return await active_at(conn, at) if config.rotas() else {}


async def between(
    conn: asyncpg.Connection | asyncpg.Pool,
    rota_id: str,
    start: datetime,
    end: datetime,
    statuses: tuple[str, ...] = ("active",),
) -> list[asyncpg.Record]:
    """The rota's change rows overlapping `[start, end)` in `statuses`, oldest first."""
    return await conn.fetch(_BETWEEN, rota_id, start, end, list(statuses))


async def _lock(conn: asyncpg.Connection, rota_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('rota:' || $1))", rota_id)


def _clashes(change: NewChange, rows: Iterable[asyncpg.Record]) -> list[asyncpg.Record]:
    """The changes among `rows` that `change` may not overlap: a live one naming the same
    person; a live temporary schedule, inside which an override would count for nothing; for a
    temporary schedule, another one; for a swap asked, the same swap asked already."""
    found = []
    for row in rows:
        if row["status"] == "proposed" and change.kind != "swap":
            continue
        if change.kind == "temporary":
            clash = row["kind"] == "temporary"
        elif row["kind"] == "temporary":
            clash = True
        else:
            clash = bool(change.people & {row["member"], row["by_member"]})
        if clash:
            found.append(row)
    return found


async def add(
    conn: asyncpg.Connection,
    rota_id: str,
    org_code: str,
    change: NewChange,
    actor: str,
    now: datetime,
) -> asyncpg.Record:
    """Store a change, in the caller's transaction: active, or proposed for a swap. It counts
    from `now` at the earliest, so who was on call before it was made stays as it was paged.
    Raises `Clash` when it overlaps a live change it may not (`_clashes`)."""
    start = max(change.start, now)
    if change.end <= start:
        raise Unknown("the change would end before it starts counting (now)")
    await _lock(conn, rota_id)
    live = await between(conn, rota_id, start, change.end, ("active", "proposed"))
    clashing = _clashes(change, live)
    if clashing:
        raise Clash(clashing)
    shifts = (
        [
            {"start": s.start.isoformat(), "end": s.end.isoformat(), "member": s.member}
            for s in change.shifts
        ]
        if change.kind == "temporary"
        else None
    )
    row = await conn.fetchrow(
        _INSERT,
        uuid.uuid4(),
        rota_id,
        org_code,
        change.kind,
        change.action,
        change.member,
        change.by,
        shifts,
        start,
        change.end,
        "proposed" if change.kind == "swap" else "active",
        change.reason,
        actor,
        now,
    )
    await audit(conn, f"rota.{change.kind}_{row['status']}", None, None, _detail(row), actor=actor)
    return row


async def take_swap(
    conn: asyncpg.Connection, rota_id: str, change_id: uuid.UUID, by: str, actor: str, now: datetime
) -> asyncpg.Record:
    """A proposed swap taken by `by`: from now (or its shift's start) it is a live replacement
    of its member by `by` to the shift's end. Raises `Unknown` for no such proposal, or one
    whose shift has ended, and `Clash` when `by` is changed already then."""
    await _lock(conn, rota_id)
    row = await conn.fetchrow(
        "SELECT * FROM rota_changes WHERE change_id = $1 AND rota_id = $2"
        " AND kind = 'swap' AND status = 'proposed'",
        change_id,
        rota_id,
    )
    if row is None:
        raise Unknown(f"no swap {change_id} of rota {rota_id} awaits a taker")
    if by == row["member"]:
        raise Unknown(f"{by} is whose shift it is: another member takes it")
    if row["end_at"] <= now:
        raise Unknown(f"the shift of swap {change_id} has ended")
    start = max(row["start_at"], now)
    taking = NewChange("swap", start, row["end_at"], "replace", row["member"], by)
    clashing = _clashes(taking, await between(conn, rota_id, start, row["end_at"]))
    if clashing:
        raise Clash(clashing)
    taken = await conn.fetchrow(
        "UPDATE rota_changes SET status = 'active', action = 'replace', by_member = $2,"
        " start_at = $5, taken_by = $3, taken_at = $4 WHERE change_id = $1 RETURNING *",
        change_id,
        by,
        actor,
        now,
        start,
    )
    await audit(conn, "rota.swap_taken", None, None, _detail(taken), actor=actor)
    return taken


async def withdraw(
    conn: asyncpg.Connection, rota_id: str, change_id: uuid.UUID, actor: str, now: datetime
) -> asyncpg.Record:
    """Withdraw a live or proposed change: one not yet counting is withdrawn whole; one that
    has started ends now, so the record of who was on call until now stays. Raises `Unknown`
    when there is none, or it has ended already."""
    await _lock(conn, rota_id)
    row = await conn.fetchrow(
        "UPDATE rota_changes SET withdrawn_by = $3, withdrawn_at = $4,"
        " status = CASE WHEN status = 'active' AND start_at < $4 THEN 'active'"
        "               ELSE 'withdrawn' END,"
        " end_at = CASE WHEN status = 'active' AND start_at < $4 THEN $4 ELSE end_at END"
        " WHERE change_id = $1 AND rota_id = $2 AND status <> 'withdrawn'"
        "   AND withdrawn_at IS NULL AND end_at > $4 RETURNING *",
        change_id,
        rota_id,
        actor,
        now,
    )
    if row is None:
        raise Unknown(f"no live change {change_id} of rota {rota_id} still to end")
    await audit(conn, f"rota.{row['kind']}_withdrawn", None, None, _detail(row), actor=actor)
    return row


def _detail(row: asyncpg.Record) -> dict:
    return {
        "change_id": str(row["change_id"]),
        "rota_id": row["rota_id"],
        "org_code": row["org_code"],
        "kind": row["kind"],
        "action": row["action"],
        "member": row["member"],
        "by": row["by_member"],
        "start": row["start_at"].isoformat(),
        "end": row["end_at"].isoformat(),
        "reason": row["reason"],
    }
