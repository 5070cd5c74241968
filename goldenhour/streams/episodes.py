"""A child's missing and away episodes, from the absence and located events alone: pure, so the
`episodes` table can be rebuilt from the event log and a replay, or an event arriving late,
gives the same table.

An episode runs from an absence's `last_seen_at` to the `located_at` that ends it. A further
report while an episode is open belongs to it (the earliest last-seen time is its start); a
child located and reported again later starts a new one. The events are taken in the order of
their own times, not of their arrival, which is what makes the answer independent of it. An
episode is `missing` if any report in it said so (whereabouts unknown), `away` only if every one
said the child was away (absent without authorisation, whereabouts known): over-reporting a
missing episode is the safer error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["Episode", "Happened", "episodes"]

Classification = Literal["missing", "away"]


@dataclass(frozen=True)
class Happened:
    """One absence or located event of a child, at its own time (last seen, located)."""

    child_id: str
    kind: Literal["absence", "located"]
    at: datetime
    event_id: str
    classification: Classification = "missing"


@dataclass(frozen=True)
class Episode:
    """One episode of a child: `end` None while it is open."""

    child_id: str
    start: datetime
    end: datetime | None
    classification: Classification
    # The absence reports in it, first first: what the episode was rebuilt from.
    reports: tuple[str, ...]
    located_by: str | None = None


def _order(event: Happened) -> tuple:
    # At one instant a report comes before a located: a child seen and found at the same
    # minute had an episode. The event id breaks any tie left, so the order is total.
    return (event.child_id, event.at, event.kind != "absence", event.event_id)


def episodes(events: Iterable[Happened]) -> list[Episode]:
    """Every episode the events make, by child and start."""
    out: list[Episode] = []
    open_: dict[str, Episode] = {}
    for event in sorted(set(events), key=_order):
        current = open_.get(event.child_id)
        if event.kind == "absence":
            if current is None:
                open_[event.child_id] = Episode(
                    event.child_id, event.at, None, event.classification, (event.event_id,)
                )
            else:
                missing = "missing" in (current.classification, event.classification)
                open_[event.child_id] = Episode(
                    current.child_id,
                    current.start,
                    None,
                    "missing" if missing else "away",
                    (*current.reports, event.event_id),
                )
        elif current is not None:
            out.append(
                Episode(
                    current.child_id,
                    current.start,
                    event.at,
                    current.classification,
                    current.reports,
                    event.event_id,
                )
            )
            del open_[event.child_id]
        # A located event with no episode open (a second one, or one for a report never
        # made) ends nothing.
    out.extend(open_.values())
    return sorted(out, key=lambda e: (e.child_id, e.start))
