"""The golden-hour figures as `GET /api/v1/figures` answers them, per month and in total.

Durations are minutes from the child's last-seen time, as a median and a 90th percentile
(nearest rank) over the episodes that reached that point; None where none did. Months are the
configured timezone's calendar months of the episodes' starts, so an episode begun at 00:30 on
1 April British Summer Time is April's, and every duration is elapsed time, clock changes
included.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NATIONAL_INTERVIEWS_WITHIN_72H_PCT",
    "AckBucket",
    "Figures",
    "Interviews",
    "Period",
    "Spread",
]

NATIONAL_INTERVIEWS_WITHIN_72H_PCT = 63.0
"""Return home interviews completed within 72 hours, England, 2023–24: the average of the local
authorities answering Missing People's freedom-of-information requests."""

NATIONAL_SOURCE = "Missing People, freedom-of-information requests, 2023–24"


class _Figure(BaseModel):
    model_config = ConfigDict(frozen=True)


class Spread(_Figure):
    """How long after last seen something happened, over the episodes where it did."""

    count: int = Field(description="Episodes where it happened")
    median_minutes: float | None
    p90_minutes: float | None


class Interviews(_Figure):
    """Return home interviews of the episodes ended (the child located).

    `due` counts those whose 72 hours have passed or whose interview is held; `within_72h`
    those held within 72 hours of the child being located (72 hours exactly is within);
    `late` those held later or not held when the 72 hours ran out; `still_open` those not yet
    held, overdue or not.
    """

    due: int
    within_72h: int
    within_72h_pct: float | None
    late: int
    still_open: int


class Period(_Figure):
    """The figures of one month (`2026-04`), or of the whole range (`total`)."""

    period: str
    episodes: int
    missing: int
    away: int
    children: int
    episodes_per_child: float | None
    to_police_told: Spread = Field(description="Last seen to the first message delivered to police")
    to_first_ack: Spread = Field(description="Last seen to the first acknowledgement")
    to_located: Spread
    steps_fired_unacknowledged: int = Field(
        description="Escalation steps after the first that fired with nobody yet acknowledging"
    )
    interviews: Interviews


class AckBucket(_Figure):
    """Episodes whose first acknowledgement came within a band of time after last seen."""

    label: str
    up_to_minutes: int | None = Field(description="The band's upper bound; None: no bound")
    episodes: int


class Figures(_Figure):
    """The figures over `[from, to]` (local dates, both included) for the caller's children."""

    authority: str | None = Field(description="The authority asked for; None: all the caller sees")
    from_: date = Field(alias="from")
    to: date
    timezone: str
    months: list[Period]
    total: Period
    time_to_first_ack: list[AckBucket]
    never_acknowledged: int
    national_interviews_within_72h_pct: float = NATIONAL_INTERVIEWS_WITHIN_72H_PCT
    national_source: str = NATIONAL_SOURCE

    model_config = ConfigDict(frozen=True, populate_by_name=True)
