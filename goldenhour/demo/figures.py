"""The demo's last act: the figures of what just happened, and Hackney's SSDA903 Missing table.

Hackney's social worker records the return home interview of act one's child; the duty manager
reads Hackney's golden-hour figures (`GET /api/v1/figures`, printed as `goldenhour report
figures` prints them), and the Missing table of the collection year is written as the DfE's
return expects it (`goldenhour report ssda903-missing`), into GOLDENHOUR_DEMO_OUT
(`demo-output` by default).
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.figures import Figures
from goldenhour.demo.missing import CHILD
from goldenhour.demo.narration import heading, say
from goldenhour.demo.outcome import ExpectationFailed, Run
from goldenhour.demo.people import SCALE
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import event
from goldenhour.reports.figure_text import as_text
from goldenhour.services.report_cli import missing_table_csv

AUTHORITY = "LBH"


def collection_year(today: date) -> int:
    """The collection year today is in: it starts on 1 April."""
    return today.year if today.month >= 4 else today.year - 1


async def _interview(system: DevSystem) -> None:
    body = {"completed_at": datetime.now(UTC).isoformat(), "by": "lbh-sw1"}
    async with system.client("lbh-sw1") as sw:
        r = await sw.post("/events", json=event("return_interview.completed", CHILD, body))
    if r.status_code != 202:
        raise ExpectationFailed(f"the return interview was refused: {r.status_code} {r.text}")
    say(f"Hackney's social worker (lbh-sw1) records {CHILD}'s return home interview, held today.")


async def _figures(system: DevSystem, since: date) -> Figures:
    async with system.client("lbh-dm1") as dm:
        r = await dm.get("/figures", params={"authority": AUTHORITY, "from": since.isoformat()})
    if r.status_code != 200:
        raise ExpectationFailed(f"the figures were refused: {r.status_code} {r.text}")
    return Figures.model_validate(r.json())


async def the_figures(system: DevSystem, run: Run) -> None:
    """Record the interview, print the figures, write the Missing table, check all three."""
    heading("ACT 4 - the figures: what inspectors and the DfE's return ask of all this")
    await _interview(system)
    config = GoldenHourConfig.model_validate(system.config)
    today = datetime.now(config.tz).date()
    figures = await _figures(system, today.replace(day=1))
    say(
        "Hackney's duty manager reads this month's figures (GET /api/v1/figures?authority="
        f"{AUTHORITY}&from={today.replace(day=1)}); a policy minute is {SCALE} s here, so the"
        " times are short:"
    )
    print(as_text(figures), flush=True)

    year = collection_year(today)
    conn = await asyncpg.connect(system.database_url, timeout=10)
    try:
        table = await missing_table_csv(conn, config, AUTHORITY, year)
        episodes = await conn.fetchval(
            "SELECT count(*) FROM episodes WHERE local_authority = $1", AUTHORITY
        )
    finally:
        await conn.close()
    out = Path(os.environ.get("GOLDENHOUR_DEMO_OUT", "demo-output"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ssda903-missing-{AUTHORITY}-{year}.csv"
    path.write_text(table, encoding="utf-8", newline="")
    rows = list(csv.reader(io.StringIO(table)))[1:]
    say(f"Hackney's SSDA903 Missing table for {year}-{(year + 1) % 100:02d}: {path}")
    print(table.rstrip(), flush=True)

    total = figures.total
    run.check(
        "every episode is counted",
        total.episodes == episodes == len(rows) and episodes >= 2,
        f"{total.episodes} in the figures, {episodes} in the episodes table, {len(rows)} rows",
    )
    run.check(
        "the police were told and someone acknowledged in every episode",
        total.to_police_told.count == total.to_first_ack.count == episodes,
        f"police told in {total.to_police_told.count}, acknowledged in {total.to_first_ack.count}",
    )
    run.check(
        "the return interview is counted within 72 hours",
        total.interviews.within_72h == 1,
        f"{total.interviews.within_72h} of {total.interviews.due} due",
    )
    run.check(
        "the Missing table carries no name or case reference",
        all(r[0].isalnum() and len(r[0]) <= 10 for r in rows) and all(r[2] in "MA" for r in rows),
        f"CHILD column {sorted({r[0] for r in rows})}",
    )
