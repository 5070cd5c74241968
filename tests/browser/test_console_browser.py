"""The console in a real browser: the live board, acknowledging from the case page, the care
home's absence form, bad input, a phone-sized screen and the keyboard.

One system for the module; each test opens its own browser contexts and reports its own child.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from tests.browser.pages import PageFactory, new_context, sign_in, start_system
from tests.e2e.console_client import PASSWORD
from tests.e2e.helpers import fetchval, place_high_risk_child, report_absence

POLICE_CONTROL_ROOM = "+447700900010"
# Set by whoever refreshes the README's screenshots of the board.
SCREENSHOT_DIR = os.environ.get("GOLDENHOUR_SCREENSHOT_DIR")


def new_child() -> str:
    return f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"


async def alert_of(system: DevSystem, child: str) -> uuid.UUID:
    """The id of the child's alert, once the system has raised it."""
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1"
    return await eventually(lambda: fetchval(system, sql, child), 10, f"an alert for {child}")


async def missing_child(
    system: DevSystem, last_seen_at: datetime | None = None
) -> tuple[str, uuid.UUID]:
    """A new child placed at Oak House and reported missing through the API; (child, alert id)."""
    child = new_child()
    await place_high_risk_child(system, child)
    await report_absence(system, last_seen_at, child_id=child)
    return child, await alert_of(system, child)


async def mark_page(page: Page) -> None:
    """A flag on `window` that a reload would lose: proof that the page updated in place."""
    await page.evaluate("window.__notReloaded = true")


async def not_reloaded(page: Page) -> bool:
    return await page.evaluate("window.__notReloaded === true")


def minutes_since(instant: datetime) -> int:
    return int((datetime.now(UTC) - instant).total_seconds() // 60)


def page_heading(page: Page):
    return page.get_by_role("heading", level=1)


def zone(system: DevSystem):
    from zoneinfo import ZoneInfo

    return ZoneInfo(system.config["timezone"])


def board_row(page: Page, alert_id: uuid.UUID):
    return page.locator(f'tr.alert-row[data-alert-id="{alert_id}"]')


# --- the live board -----------------------------------------------------------------------


async def test_an_absence_appears_on_the_board_within_two_seconds_with_a_running_clock(
    system: DevSystem, open_page: PageFactory
) -> None:
    board = await open_page("lbh-dm1")
    await expect(page_heading(board)).to_have_text("Open alerts")
    await expect(board.locator("#live-state")).to_have_text("Live")
    cookies = {c["name"]: c for c in await board.context.cookies()}
    assert cookies["gh_session"]["secure"] and cookies["gh_session"]["httpOnly"]
    assert "gh_session" not in await board.evaluate("document.cookie")
    await mark_page(board)

    child = new_child()
    await place_high_risk_child(system, child)
    # Last seen 6 min 55 s ago: the clock reads the whole minutes since then when the row
    # appears (6, or more on a slow machine), and turns to the next minute on its own.
    last_seen = datetime.now(UTC) - timedelta(minutes=6, seconds=55)
    await report_absence(system, last_seen, child_id=child)
    row = board.locator("tr.alert-row", has_text=child)
    await expect(row).to_be_visible(timeout=2000)

    clock = row.locator("td.clock")
    since = datetime.fromisoformat(await clock.get_attribute("data-since"))
    assert abs((since - last_seen).total_seconds()) < 1
    before = minutes_since(last_seen)
    shown = int(await clock.locator("span.mins").inner_text())
    assert before <= shown <= minutes_since(last_seen), (before, shown)
    await expect(clock).to_have_class(re.compile(r"\bok\b"))
    next_minute = last_seen + timedelta(minutes=shown + 1)
    turns_in_ms = (next_minute - datetime.now(UTC)).total_seconds() * 1000
    await expect(clock.locator("span.mins")).to_have_text(
        str(shown + 1), timeout=max(0, turns_in_ms) + 3000
    )
    await expect(row.locator("td.acks")).to_have_text("not yet")
    assert await not_reloaded(board)


async def test_acknowledging_on_the_case_page_updates_the_polices_board_live(
    system: DevSystem, open_page: PageFactory
) -> None:
    child, alert_id = await missing_child(system)
    police = await open_page("mps-cr1")
    police_row = board_row(police, alert_id)
    await expect(police_row.locator("td.acks")).to_have_text("not yet")
    await mark_page(police)

    duty = await open_page("lbh-dm1")
    await duty.goto(f"/console/alerts/{alert_id}")
    await expect(duty.locator("#case")).to_contain_text(child)
    await expect(duty.locator("#case-acks")).to_have_text("nobody yet")
    await duty.get_by_role("button", name="Acknowledge: I am acting on it").click()
    await expect(duty.locator("#done")).to_be_visible()
    await expect(duty.locator("#case-acks")).to_contain_text("A. Duty")
    await expect(duty.locator("#ack-button")).to_be_disabled()

    # The board has no polling: a change without a reload can only have come by its live feed.
    await expect(police_row.locator("td.acks")).to_have_text(
        "A. Duty (Hackney Children's Services)"
    )
    assert await not_reloaded(police)


async def test_a_live_update_keeps_the_keyboard_users_place(
    system: DevSystem, open_page: PageFactory
) -> None:
    _, alert_id = await missing_child(system)
    board = await open_page("lbh-dm1")
    link = board_row(board, alert_id).locator("a.case-link")
    await link.focus()
    other, _ = await missing_child(system)
    await expect(board.locator("tr.alert-row", has_text=other)).to_be_visible(timeout=2000)
    focused = await board.evaluate(
        "document.activeElement.closest('[data-alert-id]')?.dataset.alertId ?? null"
    )
    assert focused == str(alert_id)


# --- the care home's form -----------------------------------------------------------------


async def test_a_care_worker_reports_an_absence_and_the_police_get_an_sms(
    system: DevSystem, open_page: PageFactory
) -> None:
    child = new_child()
    await place_high_risk_child(system, child)
    oak = await open_page("oak-staff1")
    await expect(oak).to_have_url(re.compile(r"/console/care$"))

    form = oak.locator("#absence-form")
    await form.locator("#absence-child").select_option(child)
    default = await form.locator("#absence-last_seen_at").input_value()
    local_now = datetime.now(UTC).astimezone(zone(system)).replace(tzinfo=None)
    assert abs(datetime.fromisoformat(default) - local_now) < timedelta(minutes=2), default
    await form.get_by_label("Where last seen").fill("Outside Oak House")
    await form.get_by_label("Circumstances").fill("Left with an unknown adult in a grey car")
    await form.get_by_label("Clothing").fill("Blue hoodie, white trainers")
    await form.get_by_role("button", name="Report absence now").click()
    await expect(oak.locator("#done")).to_be_visible()

    await eventually(
        lambda: any(child in m.body for m in system.twilio.messages_to(POLICE_CONTROL_ROOM)),
        10,
        "the police control room's SMS",
    )


# --- bad input ----------------------------------------------------------------------------


async def test_a_wrong_password_gets_the_generic_error_and_no_session(
    open_page: PageFactory,
) -> None:
    page = await open_page()
    await page.goto("/console/login")
    await page.fill("#user_id", "lbh-sw1")
    await page.fill("#password", "not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    await expect(page).to_have_url(re.compile(r"/console/login$"))
    await expect(page.locator("#password")).to_have_value("")
    assert "gh_session" not in {c["name"] for c in await page.context.cookies()}


async def test_a_care_worker_cannot_open_another_homes_case(
    system: DevSystem, open_page: PageFactory
) -> None:
    _, alert_id = await missing_child(system)  # placed at Oak House
    elm = await open_page("elm-staff1")
    response = await elm.goto(f"/console/alerts/{alert_id}")
    assert response is not None and response.status == 403
    await expect(elm.locator("main")).to_contain_text("another agency")


# --- phone and keyboard -------------------------------------------------------------------


async def test_the_board_fits_a_360_pixel_phone(system: DevSystem, open_page: PageFactory) -> None:
    child, alert_id = await missing_child(system)
    phone = await open_page("lbh-dm1", width=360, height=740)
    row = board_row(phone, alert_id)
    await expect(row).to_be_visible()
    # Measured in one go: the live board may replace its rows between two calls.
    seen = await phone.evaluate(
        """id => {
            const row = document.querySelector(`tr.alert-row[data-alert-id="${id}"]`);
            const box = row.getBoundingClientRect();
            const link = row.querySelector("a.case-link");
            return {
                width: document.scrollingElement.scrollWidth,
                left: box.left,
                right: box.right,
                child: link.textContent.trim(),
                clock: row.querySelector("td.clock").innerText,
                font: parseFloat(getComputedStyle(link).fontSize),
            };
        }""",
        str(alert_id),
    )
    assert seen["width"] <= 360, f"the board scrolls sideways: {seen['width']} px wide"
    assert 0 <= seen["left"] and seen["right"] <= 360, seen
    assert seen["child"] == child
    assert re.fullmatch(r"\d+ min", seen["clock"].strip()), seen["clock"]
    assert seen["font"] >= 14, f"case reference in {seen['font']}px type"


async def test_signing_in_with_the_keyboard_alone(open_page: PageFactory) -> None:
    page = await open_page()
    await page.goto("/console/login")
    await expect(page.locator("#user_id")).to_be_focused()  # autofocus: type at once
    # From the top: a click on the page's title bar moves the point Tab starts from (a blur
    # would leave it on the user-name field).
    await page.locator("header .brand").click()
    await expect(page.locator("#user_id")).not_to_be_focused()
    seen = []
    for _ in range(5):
        await page.keyboard.press("Tab")
        seen.append(await focused(page))
        if seen[-1] == "user_id":
            break
    assert seen == ["user_id"], f"Tab went {seen}"
    await page.keyboard.type("lbh-dm1")
    await page.keyboard.press("Tab")
    assert await focused(page) == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/console$"))
    await expect(page_heading(page)).to_have_text("Open alerts")


async def focused(page: Page) -> str:
    """The focused element's id, or its text when it has none."""
    return await page.evaluate(
        "(e => e.id || e.textContent.trim() || e.tagName)(document.activeElement)"
    )


# --- the README's screenshots ---------------------------------------------------------------


async def test_the_readme_screenshots_can_be_made(stack: EmbeddedStack, browser: Browser) -> None:
    """The board at desk and phone width, into GOLDENHOUR_SCREENSHOT_DIR (=docs to refresh the
    README's) or tests/artifacts/ otherwise."""
    out = Path(SCREENSHOT_DIR or "tests/artifacts/screenshots")
    await save_readme_screenshots(stack, browser, out)
    for name in ("console-board.png", "console-board-phone.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


async def save_readme_screenshots(stack: EmbeddedStack, browser: Browser, out: Path) -> None:
    """A board with three live alerts, one of them acknowledged, at desk and phone widths."""
    system = await start_system(stack)
    try:
        now = datetime.now(UTC)
        alerts = [await missing_child(system, now - timedelta(minutes=m)) for m in (47, 18, 3)]
        _, acked = alerts[1]
        desk = await new_context(browser, system, 1200, 700)
        phone = await new_context(browser, system, 360, 740)
        try:
            page = await desk.new_page()
            await sign_in(page, "lbh-dm1")
            await page.goto(f"/console/alerts/{acked}")
            await page.get_by_role("button", name="Acknowledge: I am acting on it").click()
            await expect(page.locator("#done")).to_be_visible()
            await page.goto("/console")
            await expect(page.locator("tr.alert-row")).to_have_count(3)
            await expect(board_row(page, acked).locator("td.acks")).to_contain_text("A. Duty")
            await asyncio.sleep(2)  # let the told-states settle to "delivered"
            out.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out / "console-board.png"))

            small = await phone.new_page()
            await sign_in(small, "lbh-dm1")
            await expect(small.locator("tr.alert-row")).to_have_count(3)
            await small.screenshot(path=str(out / "console-board-phone.png"))
        finally:
            await desk.close()
            await phone.close()
    finally:
        await system.stop()
