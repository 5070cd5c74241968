"""The alert's timeline line that says the screen withheld a text from its SMS, calls or shared
alert: whoever reads only the message is told to look at the case, and the case says why."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from goldenhour.contracts.alert_kinds import WITHHELD_PREFIX
from goldenhour.infra.db import audit
from goldenhour.streams import alert_steps

log = structlog.get_logger(__name__)


WHERE = {
    "sms": "SMS and voice calls",
    "share": "the shared alert",
}


def withheld_detail(where: str, fields: list[str]) -> str:
    """The timeline's words for what was withheld, and where."""
    named = ", ".join(f.replace("_", " ") for f in fields)
    return (
        f"{named} withheld from {WHERE[where]}: it mentions nationality or immigration status,"
        " or reads like an instruction of our own."
        ' They say "see the case in Golden Hour" instead.'
    )


def withheld_key(where: str, version: int | None = None) -> str:
    """The timeline line's step key: one per alert for SMS, one per shared alert's version."""
    return f"{WITHHELD_PREFIX}{where}" + (f"_v{version}" if version is not None else "")


async def record_withheld(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    where: str,
    fields: list[str],
    now: datetime,
    version: int | None = None,
) -> None:
    """Once per key and alert: the timeline line, an audit line, a log line."""
    if not fields:
        return
    key = withheld_key(where, version)
    recorded = await alert_steps.record_line(
        conn, alert, key, now, withheld_detail(where, fields), alert["policy"]
    )
    if not recorded:
        return
    await audit(
        conn,
        "alert.text_withheld",
        alert["child_id"],
        alert["alert_id"],
        {"step_key": key, "fields": fields},
    )
    log.info(
        "alert.text_withheld",
        alert_id=str(alert["alert_id"]),
        child_id=alert["child_id"],
        step_key=key,
        fields=fields,
    )
