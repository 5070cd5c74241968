"""The golden-hour figures as three SVG charts drawn on the server by pygal: a `Figures` in, SVG
text out, nothing else read.

Each chart scales to its container (a viewBox, no width or height), carries no script (pygal's
own configuration script is taken out), says what it shows in its `<title>` and `<desc>`, and is
coloured from the Okabe–Ito palette, which reads for colour-blind readers and, dark against
light, in a black-and-white print. Its one `<style>` is allowed by the page's Content-Security-
Policy by its hash (`style_sources`), so no inline style has to be allowed at large.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree

import pygal
from pygal.style import Style

from goldenhour.contracts.figures import AckBucket, Figures

__all__ = [
    "Chart",
    "band_labels",
    "charts",
    "episodes_chart",
    "first_ack_chart",
    "interviews_chart",
    "month_label",
    "style_sources",
]

# Okabe & Ito's colours for colour-blind readers: a dark blue against an orange stays two
# greys apart in print, and the vermilion marks what nobody acknowledged.
BLUE, ORANGE, VERMILION, INK = "#0072B2", "#E69F00", "#D55E00", "#111111"

# Drawn at this size and scaled to the page: on a 360-pixel phone the labels are 11 pixels high.
WIDTH, HEIGHT = 420, 300


def _style(colors: tuple[str, ...], reference: bool = False) -> Style:
    """Dark ink on white, solid fills; only a reference line's guide drawn bolder than the rest."""
    return Style(
        font_family='system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        background="#ffffff",
        plot_background="#ffffff",
        foreground=INK,
        foreground_strong=INK,
        foreground_subtle="#555555",
        colors=colors,
        label_font_size=15,
        major_label_font_size=15,
        legend_font_size=15,
        value_font_size=14,
        title_font_size=14,  # pygal's size for the axes' titles too
        guide_stroke_color="#999999",
        major_guide_stroke_color=INK if reference else "#999999",
        guide_stroke_dasharray="2,4",
        major_guide_stroke_dasharray="8,4" if reference else "2,4",
        opacity="1",
        opacity_hover="1",
        stroke_opacity="1",
        stroke_opacity_hover="1",
        stroke_width="1",
        stroke_width_hover="1",
        transition="none",
        no_data_font_size=16,
    )


# Made bolder than pygal's guides: the national reference must read as a line, not a guide.
REFERENCE_CSS = "#chart-{key} .axis.y .guides .major.line {{ stroke-width: 2.5; }}"


@dataclass(frozen=True)
class Chart:
    """One chart: its key (the SVG's id is `chart-<key>`), its name, and its SVG text."""

    key: str
    title: str
    svg: str


def month_label(period: str) -> str:
    """`2026-04` as a reader says it: `Apr 2026`."""
    return date.fromisoformat(f"{period}-01").strftime("%b %Y")


def _span(minutes: int) -> str:
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def band_labels(buckets: Sequence[AckBucket]) -> list[str]:
    """Each band of time to first acknowledgement as a range: `0–15 min`, …, `over 4 h`."""
    out, lower = [], 0
    for b in buckets:
        if b.up_to_minutes is None:
            out.append(f"over {_span(lower)}")
            continue
        low = _span(lower) if lower else "0"
        if lower and (lower < 60) == (b.up_to_minutes < 60):
            low = low.split()[0]  # "15–30 min", "1–2 h": the unit said once
        out.append(f"{low}–{_span(b.up_to_minutes)}")
        lower = b.up_to_minutes
    return out


def _accessible(key: str, title: str, description: str) -> Callable[[Any], Any]:
    """An xml filter: no script, no tooltip (it needs one), no inline style attribute (the page's
    policy refuses them), no generator comments; a `<title>` and `<desc>` the image is named by."""

    def apply(root: Any) -> Any:
        parents = {child: parent for parent in root.iter() for child in parent}
        for el in list(parents):
            tag = el.tag if isinstance(el.tag, str) else ""
            unwanted = tag == "script" or "tooltip" in (el.get("class") or "").split()
            if unwanted or not tag:  # comments and processing instructions have no str tag
                parents[el].remove(el)
        for el in root.iter():
            if isinstance(el.tag, str):
                el.attrib.pop("style", None)
        heading = next(el for el in root if el.tag == "title")
        heading.text = title
        heading.set("id", f"chart-{key}-title")
        desc = root.makeelement("desc", {"id": f"chart-{key}-desc"})
        desc.text = description
        root.insert(list(root).index(heading) + 1, desc)
        root.set("role", "img")
        root.set("aria-labelledby", f"chart-{key}-title chart-{key}-desc")
        root.set("class", f"{root.get('class', '')} figure-chart".strip())
        return root

    return apply


def _chart(kind: type, key: str, title: str, description: str, style: Style, **config: Any) -> Any:
    """A pygal chart of `kind` as every chart here is drawn, `config` added or overriding."""
    settings: dict[str, Any] = {
        "style": style,
        "width": WIDTH,
        "height": HEIGHT,
        "explicit_size": False,  # a viewBox only: the page decides the size
        "js": [],
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 2,
        "truncate_legend": -1,
        "truncate_label": -1,
        "margin": 8,
        "spacing": 8,
        "print_zeroes": False,
        "no_data_text": "Nothing to draw",
    }
    chart = kind(**{**settings, **config})
    chart.add_xml_filter(_accessible(key, title, description))
    chart.uuid = key  # the SVG's id, `chart-<key>`: stable, so its style's hash is too
    return chart


def _months(f: Figures, config: dict[str, Any]) -> list[str]:
    """The months' labels; past a year only every few are drawn (the table names them all)."""
    labels = [month_label(p.period) for p in f.months]
    if len(labels) > 12:
        config.update(x_labels_major_every=-(-len(labels) // 12), show_minor_x_labels=False)
    return labels


def _render(chart: Any) -> str:
    return chart.render(is_unicode=True)


def episodes_chart(f: Figures) -> str:
    """Episodes begun each month, missing and away stacked."""
    config: dict[str, Any] = {}
    labels = _months(f, config)
    chart = _chart(
        pygal.StackedBar,
        "episodes",
        "Episodes each month, missing and away",
        "Bars per month, each split into missing (blue, below) and away (orange, above): "
        + "; ".join(
            f"{month_label(p.period)}: {p.missing} missing, {p.away} away" for p in f.months
        )
        + ".",
        _style((BLUE, ORANGE)),
        x_label_rotation=-45,
        min_scale=1,
        max_scale=6,
        y_title="Episodes",
        **config,
    )
    chart.x_labels = labels
    top = max((p.episodes for p in f.months), default=0)
    chart.range = (0, max(top, 4))
    chart.add("Missing", [p.missing for p in f.months])
    chart.add("Away", [p.away for p in f.months])
    return _render(chart)


def interviews_chart(f: Figures) -> str:
    """Return home interviews held within 72 hours each month, as a % of those due, against the
    national average drawn as a labelled reference line."""
    national = f.national_interviews_within_72h_pct
    config: dict[str, Any] = {}
    labels = _months(f, config)
    said = "; ".join(
        f"{month_label(p.period)}: "
        + (
            "none due"
            if p.interviews.within_72h_pct is None
            else f"{p.interviews.within_72h_pct:g}%"
        )
        for p in f.months
    )
    reference = f"England {national:g}%"
    chart = _chart(
        pygal.Bar,
        "interviews",
        "Return home interviews held within 72 hours, % of those due",
        f"Bars per month: {said}. A dashed line marks the average for England, {national:g}% "
        f"({f.national_source}).",
        _style((BLUE,), reference=True),
        show_legend=False,
        no_data_text="No interview due yet",
        x_title=f"{reference}: {f.national_source}",
        x_label_rotation=-45,
        range=(0, 100),
        y_labels=[0, 20, 40, {"label": reference, "value": national}, 80, 100],
        y_labels_major=[national],
        value_formatter=lambda v: f"{v:g}%",
        css=[
            "file://style.css",
            "file://graph.css",
            "inline:" + REFERENCE_CSS.format(key="interviews"),
        ],
        **config,
    )
    chart.x_labels = labels
    chart.add("Held within 72 hours (%)", [p.interviews.within_72h_pct for p in f.months])
    return _render(chart)


def first_ack_chart(f: Figures) -> str:
    """Episodes by how long after last seen someone first acknowledged, and those nobody did."""
    bands = band_labels(f.time_to_first_ack)
    labels = [*bands, "never"]
    said = "; ".join(
        f"{label}: {b.episodes}" for label, b in zip(bands, f.time_to_first_ack, strict=True)
    )
    chart = _chart(
        pygal.HorizontalStackedBar,
        "first-ack",
        "Time from last seen to the first acknowledgement",
        f"Episodes by time from last seen to first acknowledgement: {said}; "
        f"never acknowledged: {f.never_acknowledged}.",
        _style((BLUE, VERMILION)),
        min_scale=1,
        max_scale=6,
        x_title="Episodes",
        print_values=True,
        legend_at_bottom_columns=1,
    )
    chart.x_labels = labels
    top = max([f.never_acknowledged, *(b.episodes for b in f.time_to_first_ack)])
    chart.range = (0, max(top, 4))
    chart.add("Acknowledged", [b.episodes for b in f.time_to_first_ack] + [None])
    chart.add("Never acknowledged", [None] * len(bands) + [f.never_acknowledged])
    return _render(chart)


def charts(f: Figures) -> list[Chart]:
    """The page's three charts, in its order."""
    return [
        Chart("episodes", "Episodes each month", episodes_chart(f)),
        Chart("interviews", "Return home interviews within 72 hours", interviews_chart(f)),
        Chart("first-ack", "Time to first acknowledgement", first_ack_chart(f)),
    ]


_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S)


def style_sources(svgs: Iterable[str]) -> list[str]:
    """The Content-Security-Policy sources (`'sha256-…'`) that allow the charts' `<style>`s,
    hashed over their text as a browser reads it (entities decoded)."""
    out = []
    for svg in svgs:
        for raw in _STYLE.findall(svg):
            text = ElementTree.fromstring(f"<s>{raw}</s>").text or ""
            digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
            out.append(f"'sha256-{digest}'")
    return out
