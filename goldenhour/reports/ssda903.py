"""The SSDA903 Missing table, as the Department for Education's return expects it: pure.

One row per missing or away episode of the authority's children that was open at any time in
the collection year (1 April to 31 March): `CHILD` (the authority's SSDA903 id), `DOB`,
`MISSING` (`M` missing, `A` away from placement without authorisation), `MIS_START` and
`MIS_END` as `dd/mm/yyyy` local dates. An episode still open at 31 March has `MIS_END` blank; one
still open at 1 April is carried into the year with its own start date.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

__all__ = ["COLUMNS", "MissingRow", "Spell", "collection_year", "missing_table", "to_csv"]

COLUMNS = ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END")


@dataclass(frozen=True)
class Spell:
    """An episode as the return needs it."""

    child_id: str
    ssda903_id: str | None
    date_of_birth: date | None
    classification: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class MissingRow:
    child: str
    dob: date | None
    missing: str
    start: date
    end: date | None


def collection_year(year: int) -> tuple[date, date]:
    """The collection year starting 1 April `year`: its first and last days."""
    return date(year, 4, 1), date(year + 1, 3, 31)


def missing_table(spells: Iterable[Spell], year: int, tz: ZoneInfo) -> list[MissingRow]:
    """The rows for the collection year starting 1 April `year`, by child and start."""
    first, last = collection_year(year)
    rows = []
    for s in spells:
        start = s.start.astimezone(tz).date()
        end = s.end.astimezone(tz).date() if s.end is not None else None
        if start > last or (end is not None and end < first):
            continue
        rows.append(
            MissingRow(
                # A child with no SSDA903 id on record is returned under its case reference,
                # which the authority's own system can map.
                s.ssda903_id or s.child_id,
                s.date_of_birth,
                "A" if s.classification == "away" else "M",
                start,
                end if end is not None and end <= last else None,
            )
        )
    return sorted(rows, key=lambda r: (r.child, r.start, r.end or date.max))


def _day(d: date | None) -> str:
    return d.strftime("%d/%m/%Y") if d else ""


def to_csv(rows: Iterable[MissingRow]) -> str:
    """The table as CSV, header first, CRLF line ends as spreadsheets write them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.child, _day(r.dob), r.missing, _day(r.start), _day(r.end)])
    return out.getvalue()
