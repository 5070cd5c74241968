"""`goldenhour report ssda903-missing|figures|rebuild-episodes`: the figures and the statutory
return, for an authority's performance team or the platform team.

Works against a running system: it needs only the database (`GOLDENHOUR_DATABASE_URL`) and the
config (for the timezone and the directory). It reads; only `rebuild-episodes` writes, and that
one child at a time under the child's lock, as intake does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
from fastapi.exceptions import RequestValidationError

from goldenhour.contracts.config import GoldenHourConfig, OrgKind
from goldenhour.contracts.figures import Figures
from goldenhour.infra.db import DbLimits, connect
from goldenhour.infra.settings import Settings
from goldenhour.reports import episode_store, figure_store
from goldenhour.reports.figure_store import Scope
from goldenhour.reports.figure_text import as_text
from goldenhour.reports.figures import to_csv as figures_csv
from goldenhour.reports.ssda903 import missing_table
from goldenhour.reports.ssda903 import to_csv as missing_csv
from goldenhour.services.figures_api import check_range, police_forces

__all__ = ["add_arguments", "main", "missing_table_csv", "figures_of"]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def add_arguments(report: argparse.ArgumentParser) -> None:
    sub = report.add_subparsers(dest="report", required=True)
    ssda = sub.add_parser(
        "ssda903-missing", help="the SSDA903 Missing table of one authority's collection year"
    )
    ssda.add_argument("--authority", required=True, help="the local authority's code, e.g. LBH")
    ssda.add_argument(
        "--year", type=int, required=True, help="the collection year starting 1 April YEAR"
    )
    ssda.add_argument("--out", type=Path, help="write the CSV here (default: standard output)")
    figures = sub.add_parser("figures", help="the golden-hour figures per month")
    figures.add_argument("--authority", help="one local authority (default: every one)")
    figures.add_argument("--from", dest="first", type=_day, help="first date (YYYY-MM-DD)")
    figures.add_argument("--to", dest="last", type=_day, help="last date (YYYY-MM-DD)")
    figures.add_argument("--format", choices=["text", "csv", "json"], default="text")
    figures.add_argument("--out", type=Path, help="write here (default: standard output)")
    sub.add_parser("rebuild-episodes", help="rebuild every child's episodes from the events")


async def missing_table_csv(
    conn: asyncpg.Connection, config: GoldenHourConfig, authority: str, year: int
) -> str:
    """The authority's SSDA903 Missing table for the collection year starting 1 April `year`."""
    spells = await figure_store.spells(conn, authority, year, config.tz)
    return missing_csv(missing_table(spells, year, config.tz))


async def figures_of(
    conn: asyncpg.Connection,
    config: GoldenHourConfig,
    authority: str | None,
    first: date | None = None,
    last: date | None = None,
) -> Figures:
    begin, end = check_range(first, last, datetime.now(config.tz).date())
    return await figure_store.load_figures(
        conn,
        Scope(frozenset({authority}) if authority else None),
        first=begin,
        last=end,
        tz=config.tz,
        police=police_forces(config),
        now=datetime.now(UTC),
        authority=authority,
    )


def _authority(config: GoldenHourConfig, code: str | None) -> None:
    if code is None:
        return
    org = config.org(code)
    if org is None or org.kind != OrgKind.local_authority:
        raise SystemExit(f"goldenhour report: {code} is not a local authority of the directory")


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text, encoding="utf-8", newline="")
        print(f"goldenhour report: wrote {out}", file=sys.stderr)


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run one report; 0 on success, 2 when the database cannot be reached."""
    if not settings.database_url:
        raise SystemExit("goldenhour report: GOLDENHOUR_DATABASE_URL is not set")
    config = settings.config
    _authority(config, getattr(args, "authority", None))
    if args.report == "ssda903-missing" and not 2000 <= args.year <= 2199:
        raise SystemExit("goldenhour report: --year is a collection year from 2000 to 2199")
    return asyncio.run(_main(settings.database_url, settings.db_limits, config, args))


async def _main(
    dsn: str, limits: DbLimits, config: GoldenHourConfig, args: argparse.Namespace
) -> int:
    try:
        conn = await connect(dsn, limits)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"goldenhour report: cannot reach the database: {exc}", file=sys.stderr)
        return 2
    try:
        if args.report == "rebuild-episodes":
            children, episodes = await episode_store.rebuild_all(conn)
            print(f"goldenhour report: rebuilt {episodes} episodes of {children} children")
            return 0
        if args.report == "ssda903-missing":
            _write(await missing_table_csv(conn, config, args.authority, args.year), args.out)
            return 0
        try:
            found = await figures_of(conn, config, args.authority, args.first, args.last)
        except RequestValidationError as exc:  # a range refused: its message names the fault
            raise SystemExit(f"goldenhour report: {exc.errors()[0]['msg']}") from None
        text = {
            "text": as_text,
            "csv": figures_csv,
            "json": lambda f: f.model_dump_json(by_alias=True, indent=2),
        }[args.format](found)
        _write(text, args.out)
        return 0
    finally:
        await conn.close()
