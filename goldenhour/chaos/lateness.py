"""I1's and I2's bounds: how late each event was applied and each step decided, and the fault
each lateness is put down to. Pure functions over a run's evidence and its fault windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from goldenhour.chaos import faults
from goldenhour.chaos.evidence import Step
from goldenhour.chaos.faults import Window

# A step attributed to a fault was due in it or up to this long after it ended.
ATTRIBUTION_S = 10.0
# I2: a due step is decided within this long of its due time, or of the fault covering it.
DECIDED_WITHIN_S = 2.0
# Faults that hold back the deciding of a step: until one ends a step due in it cannot be
# decided. A provider's faults do not: the clock decides without asking Twilio or SMTP.
COVERS_STEPS = frozenset({*faults.INFRA_KINDS, faults.POLICY_REORDER})


@dataclass(frozen=True)
class Late:
    """How late one step was decided, and the fault it is put down to (None: no fault)."""

    step: Step
    due: float
    fault: str | None
    late_s: float


@dataclass(frozen=True)
class DueTimes:
    """What moves a step's due time as the harness sees it, per child or step key: when its
    absence and its return were applied, when its risk was raised, when a deploy added it."""

    absence_at: Mapping[str, float]
    located_at: Mapping[str, float]
    since: Mapping[str, float] = field(default_factory=dict)
    not_before: Mapping[str, float] = field(default_factory=dict)

    def of(self, s: Step) -> float:
        """When `s` was due: its due time, or when its report was applied if later (a late
        report's steps are due at once), or when its child's risk was raised or a deploy added
        it (a catch-up is due then), if it was decided after that."""
        cause = self.located_at if s.step_key == "stand_down" else self.absence_at
        due = max(s.due_at, cause.get(s.child_id, s.due_at))
        for moment in (self.since.get(s.child_id), self.not_before.get(s.step_key)):
            if moment is not None and s.decided_at >= moment:
                due = max(due, moment)
        return due


def attributed(due: float, windows: list[Window]) -> Window | None:
    """The last fault that began before `due` and ended at most ATTRIBUTION_S before it."""
    found = None
    for w in windows:
        if w.start <= due <= w.end + ATTRIBUTION_S:
            found = w
    return found


def step_lateness(steps: list[Step], windows: list[Window], due_times: DueTimes) -> list[Late]:
    """I2 for each decided step: its lateness from its due time, or from the end of a fault
    that held the clock back (COVERS_STEPS) when it fell due in one."""
    out = []
    for s in steps:
        due = due_times.of(s)
        window = attributed(due, windows)
        if window is not None and window.kind in COVERS_STEPS:
            due = max(due, window.end)
        label = None if window is None else window.label
        out.append(Late(s, due, label, max(0.0, s.decided_at - due)))
    return out


def lateness(lates: list[Late], windows: list[Window]) -> tuple[dict[str, float], float]:
    """The worst lateness of a step after each fault (by label), and outside any fault.

    A step belongs to the last fault that began before it was due and ended at most
    ATTRIBUTION_S before (`lates` from `step_lateness`)."""
    per_fault: dict[str, float] = {w.label: 0.0 for w in windows}
    steady = 0.0
    for late in lates:
        if late.fault is None:
            steady = max(steady, late.late_s)
        else:
            per_fault[late.fault] = max(per_fault[late.fault], late.late_s)
    return per_fault, steady


def applied_times(
    accepted_at: Mapping[str, float], event_of: Mapping[str, str], applied: Mapping[str, float]
) -> dict[str, float]:
    """Per child, when its event was applied (by the database's clock), else when accepted."""
    out = {}
    for child, at in accepted_at.items():
        out[child] = max(at, applied.get(event_of.get(child, ""), at))
    return out


def decided_late(lates: list[Late], bound_s: float = DECIDED_WITHIN_S) -> list[Late]:
    """I2's bound: steps decided more than `bound_s` after they were due."""
    return [late for late in lates if late.late_s > bound_s]


def applied_late(
    accepted_at: Mapping[str, float],
    applied: Mapping[str, float],
    windows: list[Window],
    bound_s: float = 10.0,
) -> int:
    """I1's bound: events applied more than `bound_s` after they were accepted, or after the
    fault they were accepted in ended."""
    late = 0
    for event_id, at in accepted_at.items():
        done = applied.get(event_id)
        if done is None:
            continue
        start = at
        for w in windows:
            if w.start <= at <= w.end:
                start = max(start, w.end)
        if done - start > bound_s:
            late += 1
    return late
