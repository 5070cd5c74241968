"""The alert's record as the demo prints it: the timeline table and the summary."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from datetime import datetime

from goldenhour.demo.checks import note_key
from goldenhour.demo.narration import WIDTH, clock, heading, print_checks
from goldenhour.demo.outcome import Run
from goldenhour.demo.people import PLACE, SCALE, Directory
from goldenhour.dev.devsystem import DevSystem


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _maybe(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


# Column widths of the timeline table.
COLS = (("time", 8, ">"), ("policy", 7, ">"), ("step", 10, "<"), ("who", 8, "<"))
COLS += (("organisation", 29, "<"), ("channel", 7, "<"), ("status", 19, "<"))


def _row(cells: list[str]) -> str:
    out = []
    for (_, width, align), cell in zip(COLS, cells, strict=False):
        cell = cell if len(cell) <= width else cell[: width - 1] + "~"
        out.append(f"{cell:{align}{width}}")
    return "  ".join(out).rstrip()[:WIDTH]


def _event_row(rel: str, pol: str, step: str, text: str) -> str:
    """A row that is an event rather than a message: its text spans the columns on the right."""
    head = "  ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip((rel, pol, step), COLS, strict=False))
    lines = textwrap.wrap(text, WIDTH - len(head) - 2, break_on_hyphens=False) or [""]
    return "\n".join([f"{head}  {lines[0]}"] + [" " * (len(head) + 2) + ln for ln in lines[1:]])


def print_timeline(alert: dict, people: Directory, run: Run) -> None:
    """Every event, step, message and acknowledgement of the alert, in time order."""
    anchor = _at(alert["last_seen_at"])

    def rel(at: datetime) -> tuple[str, str]:
        seconds = (at - anchor).total_seconds()
        return f"{seconds:+.3f}s", f"{round(seconds / SCALE):+d} min"

    rows: list[tuple[datetime, int, str]] = []
    rows.append((anchor, 0, _event_row(*rel(anchor), "seen", f"LAST SEEN at {PLACE}")))
    opened = _at(alert["opened_at"])
    home = alert.get("care_home") or "-"
    home_name = people.org_names.get(home, home)
    text = f"ALERT RAISED: {alert['risk_level'].upper()} risk; {alert['local_authority']}, "
    text += f"placed at {home} ({home_name})"
    rows.append((opened, 1, _event_row(*rel(opened), "alert", text)))
    for step in alert["steps"]:
        at = _at(step["decided_at"])
        label = people.step_label(step["step_key"], condition=False)
        word = {"fired": "FIRED", "skipped": "SKIPPED", "cancelled": "CANCELLED"}.get(
            step["status"], step["status"].upper()
        )
        if step["step_key"] == "stand_down":
            text = f"STAND DOWN ({step.get('detail') or 'located'}): {label}"
        elif step["status"] != "fired":
            text = f"{word} {label} ({step.get('detail') or 'no reason given'})"
        elif "share" in (step.get("detail") or ""):
            text = f"{word} {label}, {step['detail']}"
        else:
            text = f"{word} {label}"
        rows.append((at, 2, _event_row(*rel(at), people.short(step["step_key"]), text)))
    for n in alert["notifications"]:
        at = _maybe(n["sent_at"]) or _at(n["created_at"])
        status = n["status"]
        delivered, sent = _maybe(n["delivered_at"]), _maybe(n["sent_at"])
        if status == "delivered" and delivered and sent and n["channel"] == "sms":
            status = f"delivered {(delivered - sent).total_seconds() * 1000:.0f} ms"
        elif status == "failed" and n.get("last_error"):
            status = f"failed: {n['last_error']}"
        org = people.org_names.get(n["org_code"], n["org_code"])
        cells = [*rel(at), people.short(n["step_key"]), n["contact_id"], org, n["channel"], status]
        rows.append((at, 3, _row(cells)))
    for ack in alert["acknowledgements"]:
        at = _at(ack["acknowledged_at"])
        who = ack.get("contact_id") or ack.get("user_id") or "?"
        how = f"replied ACK {run.ack_code}" if ack["via"] == "sms" else "acknowledged"
        org = people.org_names.get(ack["org_code"], ack["org_code"])
        rows.append((at, 4, _row([*rel(at), "ack", who, org, ack["via"], how])))
    resolved = _maybe(alert.get("resolved_at"))
    if resolved:
        text = f"LOCATED ({alert.get('resolution')}): alert resolved"
        rows.append((resolved, 1, _event_row(*rel(resolved), "located", text)))

    heading(
        f"TIMELINE of case {alert['child_id']}, alert {str(alert['alert_id'])[:8]} "
        f"(GET /api/v1/alerts/{{id}})"
    )
    print(
        f"Times from last seen ({clock(anchor)}); policy minutes at {SCALE} s each. "
        f"Status now: {alert['status'].upper()}.",
        flush=True,
    )
    print(flush=True)
    print(_row([name for name, _, _ in COLS]), flush=True)
    print(_row(["-" * w for _, w, _ in COLS]), flush=True)
    for _, _, line in sorted(rows, key=lambda r: (r[0], r[1])):
        print(line, flush=True)


def print_summary(alert: dict, people: Directory, run: Run, system: DevSystem) -> None:
    """The alert in a few lines, then the checks made."""
    anchor = _at(alert["last_seen_at"])
    notes = alert["notifications"]
    heading("SUMMARY")

    def line(name: str, text: str) -> None:
        lines = textwrap.wrap(text, WIDTH - 24, break_on_hyphens=False) or [""]
        print(f"  {name:<22}{lines[0]}", flush=True)
        for more in lines[1:]:
            print(" " * 24 + more, flush=True)

    for name, provider in (("SMS", system.twilio.messages), ("email", system.smtp.messages)):
        if provider and run.reported_at:
            ms = (min(m.received_at for m in provider) - run.reported_at) * 1000
            line(f"first {name}", f"{ms:.0f} ms after the report (as the provider received it)")
        else:
            line(f"first {name}", "none")
    for channel in ("sms", "email"):
        statuses = Counter(n["status"] for n in notes if n["channel"] == channel)
        detail = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
        line(f"{channel} messages", f"{sum(statuses.values())} ({detail})")
    per_step = Counter(n["step_key"] for n in notes)
    line("messages per step", ", ".join(f"{k} {v}" for k, v in per_step.items()))
    dupes = [k for k, v in Counter(note_key(n) for n in notes).items() if v > 1]
    line(
        "once per step",
        "yes: each contact told once per step and channel" if not dupes else f"NO: {dupes}",
    )
    for ack in alert["acknowledgements"]:
        at = _at(ack["acknowledged_at"])
        seconds = (at - anchor).total_seconds()
        who = ack.get("contact_id") or ack.get("user_id") or "?"
        line(
            "acknowledged by",
            f"{people.describe(who)} via {ack['via']}, at +{seconds:.3f}s "
            f"(+{round(seconds / SCALE)} min)",
        )
    if not alert["acknowledgements"]:
        line("acknowledged by", "nobody")
    for step in alert["steps"]:
        if step["status"] == "skipped":
            line("skipped", f"{step['step_key']} {people.step_label(step['step_key'])}")
            line("", f"because: {step.get('detail')}")
    shared = [s for s in alert["steps"] if "share" in (s.get("detail") or "")]
    if shared:
        line("shared alert", f"{shared[0]['step_key']} fired: {shared[0]['detail']}")
    resolved = _maybe(alert.get("resolved_at"))
    if resolved:
        seconds = (resolved - anchor).total_seconds()
        stood = {n["contact_id"] for n in notes if n["step_key"] == "stand_down"}
        line(
            "resolved",
            f"{alert.get('resolution')} at +{seconds:.3f}s (+{round(seconds / SCALE)} min); "
            f"stand-down to {len(stood)} contacts",
        )
    else:
        line("resolved", f"no (status {alert['status']})")
    line("wall time", f"{time.monotonic() - run.started:.1f} s so far")
    print(flush=True)
    print("CHECKS", flush=True)
    if not run.checks:
        print("  not run: the scenario stopped early (see the reason below)", flush=True)
    print_checks(run.checks)
