"""The figures as a plain-text table for a terminal: `goldenhour report figures` and the demo."""

from __future__ import annotations

import textwrap

from goldenhour.contracts.figures import Figures, Period, Spread

__all__ = ["as_text", "duration"]


def duration(minutes: float | None) -> str:
    """`4.5m` under an hour, `1h05` from one; `—` where nothing reached it."""
    if minutes is None:
        return "—"
    if minutes < 60:
        return f"{minutes:.1f}m"
    whole = round(minutes)
    return f"{whole // 60}h{whole % 60:02d}"


def _spread(s: Spread) -> str:
    return f"{duration(s.median_minutes)}/{duration(s.p90_minutes)}"


# At most 100 columns, as the demo's narration.
_HEAD = (
    f"{'period':<7} {'episodes':>8} {'M/A':>5} {'children':>8} {'/child':>6} {'police':>10}"
    f" {'first ack':>10} {'located':>10} {'unacked':>7} {'RHI 72h':>9} {'late':>4} {'open':>4}"
)


def _line(p: Period) -> str:
    i = p.interviews
    pct = f" {i.within_72h_pct:.0f}%" if i.within_72h_pct is not None else ""
    per_child = f"{p.episodes_per_child:.2f}" if p.episodes_per_child is not None else "—"
    return (
        f"{p.period:<7} {p.episodes:>8} {f'{p.missing}/{p.away}':>5} {p.children:>8}"
        f" {per_child:>6} {_spread(p.to_police_told):>10} {_spread(p.to_first_ack):>10}"
        f" {_spread(p.to_located):>10} {p.steps_fired_unacknowledged:>7}"
        f" {f'{i.within_72h}/{i.due}{pct}':>9} {i.late:>4} {i.still_open:>4}"
    )


def as_text(f: Figures) -> str:
    """A header, one line per month, the total, and what the columns mean."""
    who = f.authority or "every authority in scope"
    legend = (
        "Times are the median/90th percentile from last seen. M/A: missing/away. RHI 72h: return"
        " home interviews held within 72 hours of the child being found, of those due"
        f" (national: {f.national_interviews_within_72h_pct:.0f}%, {f.national_source})."
    )
    lines = [
        f"Golden-hour figures: {who}, {f.from_:%d/%m/%Y} to {f.to:%d/%m/%Y} ({f.timezone})",
        _HEAD,
        *(_line(p) for p in f.months),
        _line(f.total),
        *textwrap.wrap(legend, 100),
    ]
    return "\n".join(lines)
