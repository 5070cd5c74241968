"""The SSDA903 harness can fail: the DfE's rules run on a Missing table and report its faults.

Each table is handwritten, so these tests pin the validator's behaviour rather than ours: a
clean table passes every Missing-only rule, and each planted fault is reported by its code.
"""

from __future__ import annotations

import pytest

from tests.ssda903.validator import check_missing_table

HEADER = "CHILD,DOB,MISSING,MIS_START,MIS_END\n"
# Every rule of lac2026_27 whose `tables` name only Missing.
MISSING_ONLY = {"1004", "1005", "1006", "564", "565", "566", "567", "570", "571", "574", "586"}


def codes(report: dict) -> set[tuple[str, int]]:
    return {(e["code"], e["row"]) for e in report["errors"]}


def test_a_valid_table_passes_every_missing_only_rule() -> None:
    report = check_missing_table(
        HEADER
        + "LBH0042,01/03/2011,M,02/04/2026,03/04/2026\n"
        + "LBH0042,01/03/2011,A,03/04/2026,05/04/2026\n"  # starts the day the last one ended
        + "LBH0042,01/03/2011,M,10/03/2027,\n"  # still open at 31 March
        + "LBH0043,,A,15/03/2026,02/04/2026\n"  # DOB unknown; began last year, ended in this
        + "LBH0044,1/9/2010,M,20/06/2026,21/06/2026\n",  # day and month need no leading zero
        2026,
    )
    assert report["errors"] == []
    assert report["failed_to_run"] == []
    assert set(report["ran"]) == MISSING_ONLY
    assert {"INT13", "575", "576"} <= set(report["skipped"])  # need Header, Episodes, last year


def test_a_missing_code_other_than_m_or_a_is_1006() -> None:
    report = check_missing_table(
        HEADER + "LBH0042,01/03/2011,M,02/04/2026,03/04/2026\nLBH0043,,X,02/04/2026,\n", 2026
    )
    assert codes(report) == {("1006", 1)}
    assert report["errors"][0]["child"] == "LBH0043"


def test_an_end_before_its_start_is_567() -> None:
    report = check_missing_table(HEADER + "LBH0042,01/03/2011,M,05/04/2026,04/04/2026\n", 2026)
    assert codes(report) == {("567", 0)}


@pytest.mark.parametrize("first_end", ["10/04/2026", ""], ids=["overlapping", "still-open"])
def test_an_episode_starting_inside_another_of_the_same_childs_is_574(first_end: str) -> None:
    report = check_missing_table(
        HEADER
        + f"LBH0042,01/03/2011,M,02/04/2026,{first_end}\n"
        + "LBH0042,01/03/2011,A,05/04/2026,12/04/2026\n"
        + "LBH0043,01/03/2011,M,05/04/2026,12/04/2026\n",  # another child's: no overlap
        2026,
    )
    assert codes(report) == {("574", 1)}


def test_dates_outside_the_year_or_not_dd_mm_yyyy_are_reported() -> None:
    report = check_missing_table(
        HEADER
        + "LBH0042,01/03/2011,M,01/04/2027,\n"  # starts after 31 March 2027
        + "LBH0043,01/03/2011,M,01/02/2026,01/03/2026\n"  # ended before 1 April 2026
        + "LBH0044,01/03/2011,M,2026-05-01,\n"  # ISO start
        + "LBH0045,01/03/2011,M,01/05/26,\n"  # two-digit year
        + "LBH0046,01/05/2026,M,01/05/2026,\n",  # missing on the day of birth
        2026,
    )
    assert codes(report) == {("570", 0), ("571", 1), ("1004", 2), ("1004", 3), ("586", 4)}


def test_a_file_that_is_not_the_missing_table_raises() -> None:
    with pytest.raises(RuntimeError, match="MIS_DATE"):
        check_missing_table("CHILD,DOB,MISSING,MIS_DATE,MIS_END\nLBH0042,,M,,\n", 2026)
