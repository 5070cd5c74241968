"""The SSDA903 Missing table: the collection year's episodes, its dates and its codes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from goldenhour.reports.ssda903 import COLUMNS, Spell, collection_year, missing_table, to_csv

LONDON = ZoneInfo("Europe/London")


def at(y: int, m: int, d: int, h: int = 12) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def spell(start: datetime, end: datetime | None, child: str = "C1", **kw) -> Spell:
    return Spell(
        child,
        kw.get("ssda903_id", "LBH0042"),
        kw.get("dob", date(2011, 3, 1)),
        kw.get("classification", "missing"),
        start,
        end,
    )


def test_the_year_runs_from_1_april_to_31_march() -> None:
    assert collection_year(2026) == (date(2026, 4, 1), date(2027, 3, 31))


def test_an_episode_open_across_31_march_is_in_both_years_and_open_at_the_first_ones_end() -> None:
    across = spell(at(2027, 3, 30), at(2027, 4, 2))
    [this] = missing_table([across], 2026, LONDON)
    [next_] = missing_table([across], 2027, LONDON)
    assert (this.start, this.end) == (date(2027, 3, 30), None)
    assert (next_.start, next_.end) == (date(2027, 3, 30), date(2027, 4, 2))


def test_an_episode_still_open_is_carried_in_and_those_outside_the_year_are_left_out() -> None:
    rows = missing_table(
        [
            spell(at(2026, 2, 1), None),  # open since last year: carried in, still open
            spell(at(2026, 1, 1), at(2026, 1, 2), child="C2", ssda903_id="LBH0043"),  # last year
            spell(at(2027, 4, 1), None, child="C3", ssda903_id="LBH0044"),  # next year
        ],
        2026,
        LONDON,
    )
    assert [(r.child, r.start, r.end) for r in rows] == [("LBH0042", date(2026, 2, 1), None)]


def test_dates_are_local_days_and_codes_are_m_or_a() -> None:
    # 23:30 UTC on 31 March 2026 is 1 April in British Summer Time: this year's.
    rows = missing_table(
        [spell(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), None, classification="away", dob=None)],
        2026,
        LONDON,
    )
    text = to_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == COLUMNS
    assert parsed[1] == ["LBH0042", "", "A", "01/04/2026", ""]


def test_a_child_without_an_ssda903_id_is_returned_under_its_case_reference() -> None:
    [row] = missing_table([spell(at(2026, 5, 1), at(2026, 5, 2), ssda903_id=None)], 2026, LONDON)
    assert row.child == "C1" and row.missing == "M"
