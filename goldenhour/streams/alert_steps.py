"""An alert's timeline in Postgres (`alert_steps`): the steps its clock decided, read back as the
keys already decided, and the lines that are no step (stand-down, a last-seen time ahead, a
text withheld). The one writer of `alert_steps`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from goldenhour.contracts.alert_kinds import LAST_SEEN_AHEAD
from goldenhour.contracts.derived import StepFired
from goldenhour.contracts.events import AbsenceReported, IntakeRecord
from goldenhour.infra.db import audit
from goldenhour.streams.escalation import Delivery, PolicySpec, StepRow, legacy_keys
from goldenhour.wording import steps as wording

log = structlog.get_logger(__name__)

DECIDED_STEPS = "SELECT step_key, policy FROM alert_steps WHERE alert_id = $1"

# Rows recorded by position, re-keyed as the steps of the policy that decided them.
REKEY_POSITIONAL_STEPS = """
UPDATE alert_steps SET step_key = m.new, policy = $4,
    detail = concat_ws(' ', detail, '(recorded as ' || m.old || ')')
FROM unnest($2::text[], $3::text[]) AS m(old, new)
WHERE alert_id = $1 AND step_key = m.old AND policy IS NULL
"""

RECORD_STEP = """
INSERT INTO alert_steps (alert_id, step_key, due_at, status, decided_at, detail, policy)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""

# A line fired at once: a stand-down, a last-seen time ahead of the report.
RECORD_LINE = """
INSERT INTO alert_steps (alert_id, step_key, due_at, status, decided_at, detail, policy)
VALUES ($1, $2, $3, 'fired', $3, $4, $5) ON CONFLICT DO NOTHING
RETURNING true
"""


async def decided(
    conn: asyncpg.Connection, alert: asyncpg.Record, policy: PolicySpec
) -> frozenset[str]:
    """The keys of the steps the alert decided, under any policy. Rows recorded by position
    (`s0`, `s1`…, by an alert opened before steps had stable keys) are first re-keyed as
    the steps of `policy` at those positions, the policy that decided them."""
    rows = await conn.fetch(DECIDED_STEPS, alert["alert_id"])
    legacy = legacy_keys(policy, [r["step_key"] for r in rows if r["policy"] is None])
    keys = {r["step_key"] for r in rows if r["step_key"] not in legacy}
    if legacy:
        await conn.execute(
            REKEY_POSITIONAL_STEPS,
            alert["alert_id"],
            list(legacy),
            list(legacy.values()),
            alert["policy"],
        )
        log.info(
            "alert.steps_rekeyed",
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            keys=legacy,
        )
    return frozenset(keys | set(legacy.values()))


async def record(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    rows: Sequence[StepRow],
    planned: Sequence[Delivery],
    now: datetime,
) -> list[StepFired]:
    """Write the decided steps (a repeat is a no-op), audit and log each; the events of the
    fired ones, with whom `planned` tells for each."""
    await conn.executemany(
        RECORD_STEP,
        [
            (alert["alert_id"], r.key, r.due_at, r.status, r.decided_at, r.detail, alert["policy"])
            for r in rows
        ],
    )
    fired = []
    for row in rows:
        if row.status == "fired":
            fired.append(
                StepFired(
                    occurred_at=now,
                    child_id=alert["child_id"],
                    alert_id=alert["alert_id"],
                    step_key=row.key,
                    contact_ids=sorted(
                        {d.recipient.contact_id for d in planned if d.step_key == row.key}
                    ),
                )
            )
        await audit(
            conn,
            f"alert.step_{row.status}",
            alert["child_id"],
            alert["alert_id"],
            {"step_key": row.key, "detail": row.detail},
        )
        log.info(
            f"alert.step_{row.status}",
            alert_id=str(alert["alert_id"]),
            child_id=alert["child_id"],
            step_key=row.key,
        )
    return fired


async def record_line(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    key: str,
    now: datetime,
    detail: str,
    policy: str | None,
) -> bool:
    """A timeline line that is no step, once per alert and key; False when the alert has it
    already."""
    return bool(await conn.fetchval(RECORD_LINE, alert["alert_id"], key, now, detail, policy))


async def flag_ahead(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    record: IntakeRecord,
    ahead: timedelta,
    now: datetime,
    tz: ZoneInfo,
) -> None:
    """On the timeline: the last-seen time given was after the report was accepted, so the
    clock runs from the report's time instead (a fast clock on the reporter's device)."""
    data = record.event.data_as(AbsenceReported)
    given = data.last_seen_at.astimezone(tz).strftime("%H:%M:%S")
    detail = wording.last_seen_ahead(given, ahead.total_seconds())
    await record_line(conn, alert, LAST_SEEN_AHEAD, now, detail, alert["policy"])
    await audit(
        conn,
        "alert.last_seen_ahead",
        alert["child_id"],
        alert["alert_id"],
        {
            "event_id": str(record.event.event_id),
            "reported_last_seen_at": data.last_seen_at.isoformat(),
            "received_at": record.received_at.isoformat(),
            "ahead_s": ahead.total_seconds(),
        },
    )
    log.warning(
        "alert.last_seen_ahead",
        alert_id=str(alert["alert_id"]),
        child_id=alert["child_id"],
        ahead_s=ahead.total_seconds(),
    )
