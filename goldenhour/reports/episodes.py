"""A child's missing and away episodes, from its events alone: pure, so the `episodes` table can
be rebuilt from the event log and a replay, or an event arriving late, gives the same table.

An episode runs from an absence's `last_seen_at` to the `located_at` that ends it. A further
report while an episode is open belongs to it (the earliest last-seen time is its start); a
child located and reported again later starts a new one. The events are taken in the order of
their own times, not of their arrival, which is what makes the answer independent of it. An
episode is `missing` if any report in it said so (whereabouts unknown), `away` only if every one
said the child was away (absent without authorisation, whereabouts known): over-reporting a
missing episode is the safer error.

A return interview belongs to the latest episode ended at or before it that has none yet. An
episode belongs to the authority looking after the child when it started, and to the care home
the child was placed with then: that authority reports it in its SSDA903 return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

__all__ = ["Custody", "Episode", "Happened", "Holding", "custody_at", "episodes"]

Classification = Literal["missing", "away"]


@dataclass(frozen=True)
class Happened:
    """One absence, located or return interview event of a child, at its own time."""

    child_id: str
    kind: Literal["absence", "located", "interview"]
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
    interview_at: datetime | None = None


# At one instant a report comes before a located, and a located before an interview: a child
# seen and found at the same minute had an episode, and was interviewed after it.
_RANK = {"absence": 0, "located": 1, "interview": 2}


def _order(event: Happened) -> tuple:
    # The event id breaks any tie left, so the order is total.
    return (event.child_id, event.at, _RANK[event.kind], event.event_id)


def episodes(events: Iterable[Happened]) -> list[Episode]:
    """Every episode the events make, by child and start."""
    closed: dict[str, list[Episode]] = {}
    open_: dict[str, Episode] = {}
    for event in sorted(set(events), key=_order):
        child = event.child_id
        current = open_.get(child)
        done = closed.setdefault(child, [])
        if event.kind == "absence":
            if current is None:
                open_[child] = Episode(
                    child, event.at, None, event.classification, (event.event_id,)
                )
            else:
                missing = "missing" in (current.classification, event.classification)
                open_[child] = replace(
                    current,
                    classification="missing" if missing else "away",
                    reports=(*current.reports, event.event_id),
                )
        elif event.kind == "located":
            # A located event with no episode open (a second one, or one for a report never
            # made) ends nothing.
            if current is not None:
                done.append(replace(current, end=event.at, located_by=event.event_id))
                del open_[child]
        elif done and done[-1].interview_at is None:
            done[-1] = replace(done[-1], interview_at=event.at)
    out = [e for mine in closed.values() for e in mine] + list(open_.values())
    return sorted(out, key=lambda e: (e.child_id, e.start))


@dataclass(frozen=True)
class Custody:
    """From `at`, the child is looked after by `authority` (identified, or transferred), or
    placed with `care_home` under `placement_id`, or (`care_home` None) that placement ended."""

    at: datetime
    event_id: str
    authority: str | None = None
    placement_id: str | None = None
    care_home: str | None = None


@dataclass(frozen=True)
class Holding:
    """Who held the child at an instant."""

    authority: str | None
    care_home: str | None


def custody_at(changes: Sequence[Custody], at: datetime) -> Holding:
    """The authority and care home holding the child at `at`.

    A report whose last-seen time is earlier than the identification (a child found missing as
    soon as identified) belongs to the first authority: the one that reported it.
    """
    ordered = sorted(changes, key=lambda c: (c.at, c.event_id))
    authorities = [c.authority for c in ordered if c.authority is not None]
    authority = next(iter(authorities), None)
    placement: tuple[str, str] | None = None
    for change in ordered:
        if change.at > at:
            break
        if change.authority is not None:
            authority = change.authority
        elif change.care_home is not None:
            placement = (change.placement_id or "", change.care_home)
        elif placement is not None and placement[0] == change.placement_id:
            placement = None
    return Holding(authority, placement[1] if placement else None)
