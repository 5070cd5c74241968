"""Pure figures for the benchmark: percentiles, ratios to the floor and the printed table."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default), so p50 of two values is their mean; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], keys: Sequence[str] = ("p50", "p95", "p99", "max")) -> dict:
    """{p50, p95, p99, max} (or the keys asked for) of values, rounded to 0.01; None when empty,
    so results.json never holds NaN (not valid JSON)."""
    out: dict[str, float | None] = {}
    for key in keys:
        if key == "max":
            value = max(values) if values else math.nan
        else:
            value = percentile(values, float(key[1:]))
        out[key] = None if math.isnan(value) else round(value, 2)
    return out


def ratio(figure: float | None, floor: float | None) -> float | None:
    """How many times its floor a figure is; None when either is unknown or the floor is 0."""
    if figure is None or floor is None or floor <= 0:
        return None
    return round(figure / floor, 1)


def fmt(value: object, unit: str = "") -> str:
    """A cell: numbers with sensible precision, `-` for unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])
