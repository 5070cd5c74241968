"""The figures page's charts: well-formed SVG with no script, each month named, the national
reference drawn and labelled, scaling to its container, named for assistive technology; and
the same with pygal on the standard library's XML writer, as it is where lxml is not installed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from pygal.etree import etree as pygal_etree

from goldenhour.contracts.figures import Figures
from goldenhour.reports.figures import EpisodeFacts, figures
from goldenhour.services.console import charts
from goldenhour.services.console.figure_pages import hours_minutes, number

SVG = "{http://www.w3.org/2000/svg}"
TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def episode(child: str, start: datetime, **kw: object) -> EpisodeFacts:
    facts: dict = {
        "child_id": child,
        "start": start,
        "end": start + timedelta(hours=3),
        "classification": "missing",
        "interview_at": start + timedelta(hours=30),
        "police_told_at": start + timedelta(minutes=4),
        "first_ack_at": start + timedelta(minutes=12),
        "steps_fired_unacknowledged": 0,
    }
    return EpisodeFacts(**{**facts, **kw})


def some_figures(first: date = date(2025, 7, 1), last: date = date(2026, 6, 15)) -> Figures:
    """A year with a quiet month, an away episode, a late interview and one never acknowledged."""
    facts = [
        episode("A", datetime(2025, 7, 3, 22, tzinfo=UTC)),
        episode("A", datetime(2025, 9, 1, 9, tzinfo=UTC), classification="away"),
        episode("B", datetime(2026, 1, 10, 2, tzinfo=UTC), first_ack_at=None),
        episode(
            "C",
            datetime(2026, 3, 31, 23, 30, tzinfo=UTC),  # 00:30 on 1 April, British Summer Time
            interview_at=datetime(2026, 4, 9, tzinfo=UTC),
            first_ack_at=datetime(2026, 4, 1, 4, tzinfo=UTC),
        ),
    ]
    return figures(facts, first=first, last=last, tz=TZ, now=NOW, authority="LBH")


@pytest.fixture(params=["lxml", "etree"])
def writer(request: pytest.FixtureRequest) -> Iterator[str]:
    """pygal's XML writer: lxml where the tests install it, the standard library otherwise."""
    was = pygal_etree.lxml
    if request.param == "etree":
        pygal_etree.to_etree()
    else:
        pygal_etree.to_lxml()
    try:
        yield request.param
    finally:
        pygal_etree.to_lxml() if was else pygal_etree.to_etree()


def drawn(f: Figures) -> dict[str, ElementTree.Element]:
    return {c.key: ElementTree.fromstring(c.svg) for c in charts.charts(f)}


def texts(root: ElementTree.Element) -> list[str]:
    return [t.strip() for t in root.itertext() if t.strip()]


def test_each_chart_is_well_formed_svg_without_script(writer: str) -> None:
    found = drawn(some_figures())
    assert list(found) == ["episodes", "interviews", "first-ack"]
    for key, root in found.items():
        assert root.tag == f"{SVG}svg", key
        assert root.get("id") == f"chart-{key}"
        tags = {el.tag for el in root.iter() if isinstance(el.tag, str)}
        assert f"{SVG}script" not in tags, key
        assert not any(name.startswith("on") for el in root.iter() for name in el.attrib), key
        assert not any("style" in el.attrib for el in root.iter()), key
        assert "javascript:" not in ElementTree.tostring(root, encoding="unicode")
    for chart in charts.charts(some_figures()):
        assert not chart.svg.startswith("<?xml") and "<script" not in chart.svg


def test_each_chart_scales_to_its_container(writer: str) -> None:
    for key, root in drawn(some_figures()).items():
        assert root.get("viewBox") == f"0 0 {charts.WIDTH} {charts.HEIGHT}", key
        assert "width" not in root.attrib and "height" not in root.attrib, key


def test_each_chart_is_named_for_assistive_technology(writer: str) -> None:
    for key, root in drawn(some_figures()).items():
        assert root.get("role") == "img"
        title = root.find(f"{SVG}title")
        desc = root.find(f"{SVG}desc")
        assert title is not None and desc is not None, key
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert title.text and title.text != "Pygal", key
    episodes = drawn(some_figures())["episodes"]
    said = episodes.find(f"{SVG}desc").text
    assert "Jul 2025: 1 missing, 0 away" in said and "Sep 2025: 0 missing, 1 away" in said


def test_the_monthly_charts_name_every_month_empty_ones_too(writer: str) -> None:
    f = some_figures()
    months = [charts.month_label(p.period) for p in f.months]
    assert months[0] == "Jul 2025" and months[-1] == "Jun 2026" and len(months) == 12
    for key in ("episodes", "interviews"):
        labels = texts(drawn(f)[key])
        assert all(m in labels for m in months), (key, [m for m in months if m not in labels])
    # An episode begun at 00:30 on 1 April, British Summer Time, is April's.
    assert f.months[9].period == "2026-04" and f.months[9].episodes == 1


def test_the_interviews_chart_draws_the_national_reference_with_its_source(writer: str) -> None:
    f = some_figures()
    root = drawn(f)["interviews"]
    labels = texts(root)
    assert "England 63%" in labels
    assert any(f.national_source in t for t in root.find(f"{SVG}desc").itertext())
    assert any("Missing People" in t for t in labels)  # the source under the chart itself
    # The reference is a major guide of the y axis, at 63 on a 0–100 scale.
    guides = [
        g
        for g in root.iter(f"{SVG}g")
        if "guides" in (g.get("class") or "") and "England 63%" in texts(g)
    ]
    assert len(guides) == 1
    line = next(p for p in guides[0].iter(f"{SVG}path") if "major" in (p.get("class") or ""))
    assert "line" in line.get("class")


def test_the_reference_follows_the_figures_not_a_constant(writer: str) -> None:
    other = some_figures().model_copy(update={"national_interviews_within_72h_pct": 71.5})
    assert "England 71.5%" in texts(drawn(other)["interviews"])


def test_the_acknowledgement_chart_has_every_band_and_never(writer: str) -> None:
    f = some_figures()
    labels = texts(drawn(f)["first-ack"])
    bands = charts.band_labels(f.time_to_first_ack)
    assert bands == ["0–15 min", "15–30 min", "30 min–1 h", "1–2 h", "2–4 h", "over 4 h"]
    assert all(b in labels for b in bands) and "never" in labels
    assert [b.episodes for b in f.time_to_first_ack] == [2, 0, 0, 0, 0, 1]  # C: 4 h 30
    assert f.never_acknowledged == 1


def axis_labels(root: ElementTree.Element, axis: str) -> list[str]:
    """The labels drawn along an axis (`x` or `y`)."""
    found = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").split() == ["axis", axis]]
    return [t for g in found for t in texts(g)]


def test_long_ranges_label_a_year_of_months_at_most(writer: str) -> None:
    f = some_figures(date(2022, 1, 1), date(2026, 6, 15))
    assert len(f.months) == 54
    for key in ("episodes", "interviews"):
        labels = axis_labels(drawn(f)[key], "x")
        assert labels[0] == "Jan 2022" and 4 < len(labels) <= 12, (key, labels)
    assert len(axis_labels(drawn(some_figures())["episodes"], "x")) == 12


def test_nothing_counted_draws_empty_charts(writer: str) -> None:
    empty = figures(
        [], first=date(2026, 6, 1), last=date(2026, 6, 15), tz=TZ, now=NOW, authority=None
    )
    for key, root in drawn(empty).items():
        assert root.find(f"{SVG}title") is not None, key
    assert "Jun 2026: none due" in drawn(empty)["interviews"].find(f"{SVG}desc").text


def test_style_sources_hash_the_styles_as_a_browser_reads_them() -> None:
    chart = charts.charts(some_figures())[0]
    style = ElementTree.fromstring(chart.svg).find(f"{SVG}defs/{SVG}style")
    assert style is not None and ">" in style.text  # `&gt;` in the source, `>` once read
    digest = base64.b64encode(hashlib.sha256(style.text.encode()).digest()).decode()
    assert charts.style_sources([chart.svg]) == [f"'sha256-{digest}'"]
    # Stable: the same figures give the same SVG, so the same hash.
    assert charts.charts(some_figures())[0].svg == chart.svg


@pytest.mark.parametrize(
    ("minutes", "shown"),
    [(None, "—"), (0, "0:00"), (7.4, "0:07"), (7.5, "0:08"), (59.6, "1:00"), (1590, "26:30")],
)
def test_durations_show_as_hours_and_minutes(minutes: float | None, shown: str) -> None:
    assert hours_minutes(minutes) == shown


def test_numbers_nothing_reached_show_a_dash() -> None:
    assert (number(None), number(1.5), number(100.0, "%"), number(0)) == ("—", "1.5", "100%", "0")
