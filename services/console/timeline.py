"""One alert's story in time order: reports, steps, every message and its fate, who acted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.api import AlertDetail
from contracts.config import GoldenHourConfig
from services.console.board import ack_label, contact_label

EVENT_WORDS = {
    "absence.reported": "Absence reported",
    "child.located": "Child located",
    "checkin.recorded": "Check-in recorded",
    "risk.signal": "Risk signal logged",
    "placement.started": "Placement started",
    "placement.ended": "Placement ended",
    "child.identified": "Child identified",
    "return_interview.completed": "Return interview completed",
}


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # report, step, message, ack, resolved: the page styles each
    what: str
    detail: str = ""


def _event_detail(data: Mapping[str, Any]) -> str:
    keys = ("last_seen_location", "circumstances", "clothing", "location", "status", "kind")
    return "; ".join(str(data[k]).replace("_", " ") for k in keys if data.get(k))


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
        entries.append(Entry(s.decided_at, "step", f"Step {s.step_key} {s.status}", s.detail or ""))
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
