"""The figures page in a real browser: reached from the navigation, its three charts drawn and
styled under the page's Content-Security-Policy (nothing refused), each followed by its table;
on a 360-pixel phone nothing scrolls sideways; a range chosen in the form is the range shown;
printed, the navigation and the form are left out.

With GOLDENHOUR_SCREENSHOTS set to a folder, the page is saved there at both widths.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio
from playwright.async_api import Page, expect

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from tests.browser.pages import PageFactory
from tests.e2e.helpers import fetchval, place_high_risk_child, post_event, report_absence

SHOTS = os.environ.get("GOLDENHOUR_SCREENSHOTS")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def episodes(system: DevSystem) -> list[str]:
    """Two of Hackney's children reported missing; one acknowledged, found and interviewed."""
    children = [f"LBH-2026-{uuid.uuid4().int % 10**6:06d}" for _ in range(2)]
    for n, child in enumerate(children):
        await place_high_risk_child(system, child)
        await report_absence(system, datetime.now(UTC) - timedelta(minutes=10 + 50 * n), child)
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1 AND kind = 'missing'"
    alert_id = await eventually(lambda: fetchval(system, sql, children[0]), 10, "the alert")
    async with system.client("lbh-dm1") as la:
        assert (await la.post(f"/alerts/{alert_id}/ack")).status_code == 200
    found = {"located_at": datetime.now(UTC).isoformat(), "status": "returned"}
    r = await post_event(system, "oak-staff1", event("child.located", children[0], found))
    assert r.status_code == 202, r.text
    held = {"completed_at": datetime.now(UTC).isoformat(), "by": "lbh-sw1"}
    r = await post_event(system, "lbh-sw1", event("return_interview.completed", children[0], held))
    assert r.status_code == 202, r.text
    return children


async def save(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def refusals(page: Page) -> list[str]:
    """What the browser reports refusing under the page's Content-Security-Policy."""
    said: list[str] = []
    page.on(
        "console",
        lambda m: said.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return said


CHARTS_AND_TABLES = """() => [...document.querySelectorAll("main svg.figure-chart")].map(svg => {
    const next = svg.closest("figure").nextElementSibling;
    const bar = svg.querySelector(".series.color-0 rect, .series.color-0 path");
    return {
        id: svg.id,
        label: svg.getAttribute("aria-labelledby"),
        width: svg.getBoundingClientRect().width,
        next: next && next.tagName,
        caption: next && next.querySelector("caption") && next.querySelector("caption").textContent,
        fill: bar && getComputedStyle(bar).fill,
    };
})"""


async def test_the_page_shows_three_charts_each_with_its_table(
    system: DevSystem, open_page: PageFactory, episodes: list[str]
) -> None:
    page = await open_page("lbh-dm1", width=1280, height=900)
    refused = refusals(page)
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Figures").click()
    await expect(page).to_have_url(re.compile(r"/console/figures$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Hackney")
    drawn = await page.evaluate(CHARTS_AND_TABLES)
    assert [c["id"] for c in drawn] == ["chart-episodes", "chart-interviews", "chart-first-ack"]
    for chart in drawn:
        assert chart["next"] == "TABLE" and chart["caption"], chart
        assert chart["label"] and 300 < chart["width"] <= 640, chart
    # The charts' own styles applied: the first series in Okabe–Ito blue, not pygal's default.
    assert drawn[0]["fill"] == "rgb(0, 114, 178)", drawn[0]
    await expect(page.locator("#summary-table")).to_contain_text("Episodes")
    await expect(page.locator("#episodes-table tfoot td").nth(2)).to_have_text("2")
    await expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    await save(page, "figures-desktop.png")
    assert not refused, refused

    # Printed: the figures, without the navigation and the form.
    await page.emulate_media(media="print")
    await expect(page.locator("header.top")).to_be_hidden()
    await expect(page.locator("#figures-form")).to_be_hidden()
    await expect(page.locator("#chart-episodes")).to_be_visible()


async def test_the_page_fits_a_360_pixel_phone(
    system: DevSystem, open_page: PageFactory, episodes: list[str]
) -> None:
    phone = await open_page("lbh-dm1", width=360, height=740)
    await phone.goto("/console/figures")
    await expect(phone.locator("svg.figure-chart")).to_have_count(3)
    seen = await phone.evaluate(
        """() => {
            const outside = [...document.querySelectorAll("main *")].filter(e => {
                const box = e.getBoundingClientRect();
                return box.width > 0 && (box.left < 0 || box.right > window.innerWidth);
            });
            return {
                scroll: document.scrollingElement.scrollWidth,
                window: window.innerWidth,
                charts: [...document.querySelectorAll("svg.figure-chart")].map(
                    s => s.getBoundingClientRect().width),
                outside: outside.slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className),
            };
        }"""
    )
    assert seen["scroll"] <= seen["window"] == 360, f"the page scrolls sideways: {seen}"
    assert not seen["outside"], f"cut off at the side: {seen['outside']}"
    assert all(300 < w <= 360 for w in seen["charts"]), seen
    await save(phone, "figures-360.png")


async def test_a_range_chosen_in_the_form_is_the_range_shown(
    system: DevSystem, open_page: PageFactory, episodes: list[str]
) -> None:
    page = await open_page("lbh-dm1")
    await page.goto("/console/figures")
    today = datetime.now(ZoneInfo(system.config["timezone"])).date()
    first = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    await page.get_by_label("Episodes begun from").fill(first.isoformat())
    await page.get_by_label("To (included)").fill(today.isoformat())
    await page.get_by_role("button", name="Show figures").click()
    chosen = f"/console/figures?authority=LBH&from={first}&to={today}"
    await expect(page).to_have_url(re.compile(re.escape(chosen) + "$"))
    await expect(page.locator("#range-from")).to_have_text(f"{first.day} {first:%b %Y}")
    await expect(page.locator("#range-to")).to_have_text(f"{today.day} {today:%b %Y}")
    await expect(page.get_by_label("Episodes begun from")).to_have_value(first.isoformat())
    # Two months: the last and this, each a row, and the total.
    await expect(page.locator("#episodes-table tbody tr")).to_have_count(2)
    await expect(page.locator("#episodes-table tbody th").last).to_have_text(f"{today:%b %Y}")
    csv = await page.get_by_role("link", name="Download CSV").get_attribute("href")
    assert csv == f"/console/figures.csv?authority=LBH&from={first}&to={today}"

    # A range the wrong way round is shown again, saying why, and nothing is drawn.
    await page.get_by_label("Episodes begun from").fill(today.isoformat())
    await page.get_by_label("To (included)").fill(first.isoformat())
    await page.get_by_role("button", name="Show figures").click()
    await expect(page.locator("#f-to-error")).to_contain_text("To must not be before from")
    await expect(page.locator("svg.figure-chart")).to_have_count(0)
