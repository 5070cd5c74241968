"""The golden-hour figures on a history whose answers are known by construction."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from goldenhour.reports.figures import CSV_COLUMNS, EpisodeFacts, figures, months_between, to_csv

LONDON = ZoneInfo("Europe/London")
M = timedelta(minutes=1)
H = timedelta(hours=1)
NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)


def ep(
    child: str,
    start: datetime,
    *,
    end: timedelta | None = None,
    police: timedelta | None = None,
    ack: timedelta | None = None,
    interview: timedelta | None = None,
    classification: str = "missing",
    unacked: int = 0,
) -> EpisodeFacts:
    located = start + end if end is not None else None
    return EpisodeFacts(
        child_id=child,
        start=start,
        end=located,
        classification=classification,
        interview_at=located + interview if located and interview is not None else None,
        police_told_at=start + police if police is not None else None,
        first_ack_at=start + ack if ack is not None else None,
        steps_fired_unacknowledged=unacked,
    )


APRIL = datetime(2026, 4, 10, 20, tzinfo=UTC)
MAY = datetime(2026, 5, 3, 2, tzinfo=UTC)

HISTORY = [
    # Two children in April: C1 twice, C2 once (away); C3 in May.
    ep("C1", APRIL, end=3 * H, police=2 * M, ack=10 * M, interview=72 * H, unacked=0),
    ep("C1", APRIL + 48 * H, end=5 * H, police=4 * M, ack=50 * M, interview=73 * H, unacked=2),
    ep("C2", APRIL + 72 * H, end=1 * H, police=6 * M, ack=None, classification="away", unacked=3),
    ep("C3", MAY, end=None, police=8 * M, ack=20 * M),
]


def test_each_month_counts_its_episodes_children_and_times() -> None:
    f = figures(
        HISTORY, first=date(2026, 4, 1), last=date(2026, 5, 31), tz=LONDON, now=NOW, authority="LBH"
    )
    april, may = f.months
    assert (april.period, april.episodes, april.missing, april.away) == ("2026-04", 3, 2, 1)
    assert (april.children, april.episodes_per_child) == (2, 1.5)
    # Police told at 2, 4 and 6 minutes: median 4; nearest-rank 90th of three is the largest.
    assert (april.to_police_told.median_minutes, april.to_police_told.p90_minutes) == (4.0, 6.0)
    assert april.to_first_ack.count == 2 and april.to_first_ack.median_minutes == 30.0
    assert april.to_located.median_minutes == 180.0 and april.to_located.p90_minutes == 300.0
    assert april.steps_fired_unacknowledged == 5
    assert (may.episodes, may.children, may.to_located.count) == (1, 1, 0)
    assert f.total.episodes == 4 and f.total.children == 3
    assert f.never_acknowledged == 1


def test_an_interview_at_72_hours_exactly_is_within_and_one_a_minute_later_is_late() -> None:
    i = figures(
        HISTORY, first=date(2026, 4, 1), last=date(2026, 4, 30), tz=LONDON, now=NOW, authority=None
    ).total.interviews
    # C1's first at 72 h (within), C1's second at 73 h (late), C2's never held and overdue.
    assert (i.due, i.within_72h, i.late, i.still_open) == (3, 1, 2, 1)
    assert i.within_72h_pct == 33.3


def test_an_interview_not_yet_held_within_its_72_hours_is_open_but_not_yet_due() -> None:
    located = NOW - 10 * H
    fresh = ep("C9", located - H, end=H)
    i = figures(
        [fresh], first=date(2026, 6, 1), last=date(2026, 7, 1), tz=LONDON, now=NOW, authority=None
    ).total.interviews
    assert (i.due, i.within_72h, i.late, i.still_open, i.within_72h_pct) == (0, 0, 0, 1, None)


def test_months_are_local_and_durations_are_elapsed_across_the_clock_change() -> None:
    # 23:30 UTC on 31 March is 00:30 on 1 April in British Summer Time: April's.
    late_march = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    # Clocks go back at 02:00 BST on 25 October 2026: 00:30 BST to 02:30 GMT is three hours.
    autumn = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    f = figures(
        [ep("C1", late_march, end=2 * H), ep("C2", autumn, end=3 * H)],
        first=date(2026, 3, 1),
        last=date(2026, 10, 31),
        tz=LONDON,
        now=NOW,
        authority=None,
    )
    by = {p.period: p for p in f.months}
    assert by["2026-03"].episodes == 0 and by["2026-04"].episodes == 1
    assert by["2026-10"].to_located.median_minutes == 180.0
    assert len(f.months) == 8


def test_episodes_outside_the_range_are_not_counted() -> None:
    f = figures(
        HISTORY, first=date(2026, 5, 1), last=date(2026, 5, 31), tz=LONDON, now=NOW, authority=None
    )
    assert f.total.episodes == 1 and [p.period for p in f.months] == ["2026-05"]


def test_acknowledgement_bands_count_each_acknowledged_episode_once() -> None:
    f = figures(
        HISTORY, first=date(2026, 4, 1), last=date(2026, 5, 31), tz=LONDON, now=NOW, authority=None
    )
    bands = {b.label: b.episodes for b in f.time_to_first_ack}
    assert bands == {"15 min": 1, "30 min": 1, "1 hour": 1, "2 hours": 0, "4 hours": 0, "later": 0}


def test_the_csv_has_a_row_per_month_and_a_total_with_blanks_for_what_nothing_reached() -> None:
    f = figures(
        HISTORY, first=date(2026, 4, 1), last=date(2026, 6, 30), tz=LONDON, now=NOW, authority=None
    )
    rows = list(csv.DictReader(io.StringIO(to_csv(f))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["period"] for r in rows] == ["2026-04", "2026-05", "2026-06", "total"]
    assert rows[2]["episodes"] == "0" and rows[2]["first_ack_median_min"] == ""
    assert rows[3]["interviews_within_72h"] == "1"


def test_months_between_crosses_the_year() -> None:
    assert months_between(date(2026, 11, 5), date(2027, 2, 1)) == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]
