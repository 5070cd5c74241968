"""One alert's story in time order: reports, steps, every message and its fate, who acted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from goldenhour.contracts.alert_kinds import (
    LAST_SEEN_AHEAD,
    WITHHELD_PREFIX,
    is_renotify_key,
    policy_for_alert,
    renotify_round,
)
from goldenhour.contracts.api import AlertDetail
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.fields import format_duration
from goldenhour.services.console.board import ack_label, contact_label

EVENT_WORDS = {
    "absence.reported": "Absence reported",
    "child.located": "Child located",
    "checkin.recorded": "Check-in recorded",
    "risk.signal": "Risk signal logged",
    "placement.started": "Placement started",
    "placement.ended": "Placement ended",
    "child.identified": "Child identified",
    "child.transferred": "Child transferred to another authority",
    "return_interview.completed": "Return interview completed",
}

# Timeline lines the clock writes as steps that are no step: their status would say nothing.
_FLAGS = (LAST_SEEN_AHEAD, WITHHELD_PREFIX)


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # report, step, message, ack, resolved: the page styles each
    what: str
    detail: str = ""


def _event_detail(data: Mapping[str, Any]) -> str:
    keys = ("last_seen_location", "circumstances", "clothing", "location", "status", "kind")
    return "; ".join(str(data[k]).replace("_", " ") for k in keys if data.get(k))


def step_title(config: GoldenHourConfig, alert: AlertDetail, key: str) -> str:
    """ "Step at 15m (national.missing_persons_unit)" for a policy step's stable key."""
    if is_renotify_key(key):
        return f"Reminder {renotify_round(key)}"
    if key == LAST_SEEN_AHEAD:
        return "Last-seen time ahead of the report:"
    if key.startswith(WITHHELD_PREFIX):
        return "Text withheld:"
    policy = policy_for_alert(config, alert.kind, alert.risk_level)
    step = next((s for s in policy.steps if s.key == key), None)
    if step is None:
        return f"Step {key}"
    whom = "neighbours" if step.share else ", ".join(step.notify)
    return f"Step at {format_duration(step.after)} ({whom})"


def timeline(
    config: GoldenHourConfig, alert: AlertDetail, events: Iterable[Mapping[str, Any]]
) -> list[Entry]:
    entries = [
        Entry(
            e["received_at"],
            "report",
            EVENT_WORDS.get(e["type"], e["type"]),
            _event_detail(e["data"] or {}) + f" (by {e['user_id']}, {e['org_code']})",
        )
        for e in events
    ]
    entries.append(Entry(alert.opened_at, "step", "Alert opened", f"clock from {alert.kind}"))
    for s in alert.steps:
        entries.append(
            Entry(
                s.decided_at,
                "step",
                step_title(config, alert, s.step_key)
                + ("" if s.step_key.startswith(_FLAGS) else f" {s.status}"),
                s.detail or "",
            )
        )
    for n in alert.notifications:
        fate = n.status + (f" ({n.last_error})" if n.last_error else "")
        entries.append(
            Entry(
                n.created_at,
                "message",
                f"{n.channel.upper()} to {contact_label(config, n.contact_id)}",
                fate,
            )
        )
    for a in alert.acknowledgements:
        entries.append(
            Entry(
                a.acknowledged_at,
                "ack",
                f"Acknowledged by {ack_label(config, a.user_id, a.contact_id)}",
                f"via {a.via.replace('_', ' ')}",
            )
        )
    if alert.resolved_at:
        entries.append(
            Entry(
                alert.resolved_at,
                "resolved",
                "Stood down",
                (alert.resolution or "").replace("_", " "),
            )
        )
    return sorted(entries, key=lambda e: e.at)
