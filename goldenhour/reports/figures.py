"""The golden-hour figures from each episode's facts: pure, `now` an argument.

What `contracts.figures` documents is computed here and nowhere else, so the API, the CSV, the
console and `goldenhour report figures` cannot disagree.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from goldenhour.contracts.figures import AckBucket, Figures, Interviews, Period, Spread

__all__ = [
    "ACK_BANDS",
    "CSV_COLUMNS",
    "INTERVIEW_WITHIN",
    "EpisodeFacts",
    "figures",
    "months_between",
    "to_csv",
]

INTERVIEW_WITHIN = timedelta(hours=72)

ACK_BANDS: tuple[tuple[str, int | None], ...] = (
    ("15 min", 15),
    ("30 min", 30),
    ("1 hour", 60),
    ("2 hours", 120),
    ("4 hours", 240),
    ("later", None),
)
"""The bands of time to first acknowledgement, each up to its bound."""


@dataclass(frozen=True)
class EpisodeFacts:
    """One episode and what the alerts it raised record of it."""

    child_id: str
    start: datetime
    end: datetime | None
    classification: str
    interview_at: datetime | None
    police_told_at: datetime | None
    first_ack_at: datetime | None
    steps_fired_unacknowledged: int


def months_between(first: date, last: date) -> list[str]:
    """Every calendar month from `first`'s to `last`'s, as `YYYY-MM`."""
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _minutes(start: datetime, at: datetime | None) -> float | None:
    return None if at is None else (at - start).total_seconds() / 60


def _spread(values: Iterable[float | None]) -> Spread:
    got = sorted(v for v in values if v is not None)
    if not got:
        return Spread(count=0, median_minutes=None, p90_minutes=None)
    p90 = got[math.ceil(0.9 * len(got)) - 1]
    return Spread(
        count=len(got),
        median_minutes=round(statistics.median(got), 1),
        p90_minutes=round(p90, 1),
    )


def _interviews(episodes: Sequence[EpisodeFacts], now: datetime) -> Interviews:
    within = late = still_open = 0
    for e in episodes:
        if e.end is None:
            continue
        deadline = e.end + INTERVIEW_WITHIN
        if e.interview_at is not None and e.interview_at <= deadline:
            within += 1
        elif e.interview_at is not None or now > deadline:
            late += 1
        if e.interview_at is None:
            still_open += 1
    due = within + late
    return Interviews(
        due=due,
        within_72h=within,
        within_72h_pct=round(100 * within / due, 1) if due else None,
        late=late,
        still_open=still_open,
    )


def _period(name: str, episodes: Sequence[EpisodeFacts], now: datetime) -> Period:
    children = len({e.child_id for e in episodes})
    away = sum(e.classification == "away" for e in episodes)
    return Period(
        period=name,
        episodes=len(episodes),
        missing=len(episodes) - away,
        away=away,
        children=children,
        episodes_per_child=round(len(episodes) / children, 2) if children else None,
        to_police_told=_spread(_minutes(e.start, e.police_told_at) for e in episodes),
        to_first_ack=_spread(_minutes(e.start, e.first_ack_at) for e in episodes),
        to_located=_spread(_minutes(e.start, e.end) for e in episodes),
        steps_fired_unacknowledged=sum(e.steps_fired_unacknowledged for e in episodes),
        interviews=_interviews(episodes, now),
    )


def _ack_bands(episodes: Sequence[EpisodeFacts]) -> list[AckBucket]:
    counts = [0] * len(ACK_BANDS)
    for e in episodes:
        waited = _minutes(e.start, e.first_ack_at)
        if waited is None:
            continue
        band = next(i for i, (_, bound) in enumerate(ACK_BANDS) if bound is None or waited <= bound)
        counts[band] += 1
    return [
        AckBucket(label=label, up_to_minutes=bound, episodes=n)
        for (label, bound), n in zip(ACK_BANDS, counts, strict=True)
    ]


def figures(
    facts: Iterable[EpisodeFacts],
    *,
    first: date,
    last: date,
    tz: ZoneInfo,
    now: datetime,
    authority: str | None,
) -> Figures:
    """The figures of the episodes begun on local dates `first` to `last`, both included."""
    chosen = [e for e in facts if first <= e.start.astimezone(tz).date() <= last]
    by_month: dict[str, list[EpisodeFacts]] = {m: [] for m in months_between(first, last)}
    for e in chosen:
        by_month[e.start.astimezone(tz).strftime("%Y-%m")].append(e)
    return Figures(
        authority=authority,
        from_=first,
        to=last,
        timezone=str(tz),
        months=[_period(m, mine, now) for m, mine in by_month.items()],
        total=_period("total", chosen, now),
        time_to_first_ack=_ack_bands(chosen),
        never_acknowledged=sum(e.first_ack_at is None for e in chosen),
    )


CSV_COLUMNS = (
    "period",
    "episodes",
    "missing",
    "away",
    "children",
    "episodes_per_child",
    "police_told_median_min",
    "police_told_p90_min",
    "first_ack_median_min",
    "first_ack_p90_min",
    "located_median_min",
    "located_p90_min",
    "steps_fired_unacknowledged",
    "interviews_due",
    "interviews_within_72h",
    "interviews_within_72h_pct",
    "interviews_late",
    "interviews_still_open",
)


def _cells(p: Period) -> list[object]:
    i = p.interviews
    return [
        p.period,
        p.episodes,
        p.missing,
        p.away,
        p.children,
        p.episodes_per_child,
        p.to_police_told.median_minutes,
        p.to_police_told.p90_minutes,
        p.to_first_ack.median_minutes,
        p.to_first_ack.p90_minutes,
        p.to_located.median_minutes,
        p.to_located.p90_minutes,
        p.steps_fired_unacknowledged,
        i.due,
        i.within_72h,
        i.within_72h_pct,
        i.late,
        i.still_open,
    ]


def to_csv(f: Figures) -> str:
    """One row per month and a `total` row; a figure nothing reached is left blank."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for period in [*f.months, f.total]:
        writer.writerow(["" if c is None else c for c in _cells(period)])
    return out.getvalue()
