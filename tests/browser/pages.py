"""What the browser tests share: the running system they drive, browser contexts addressed as
Chromium must address it, signing in through the form, and screenshots of a failure."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, expect

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack
from tests.e2e.console_client import PASSWORD, set_password

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = ("lbh-dm1", "lbh-sw1", "mps-cr1", "oak-staff1", "elm-staff1")

PageFactory = Callable[..., Awaitable[Page]]


async def start_system(stack: EmbeddedStack) -> DevSystem:
    """A system in real minutes (so clocks read true) with every console user's password set."""
    config, keys = directory()
    db = stack.create_database(f"browser_{uuid.uuid4().hex[:8]}")
    system = DevSystem(stack.kafka_bootstrap, db, config, keys)
    await system.start()
    try:
        # Each is an admin command in a process of its own: run them side by side.
        await asyncio.gather(*(asyncio.to_thread(set_password, system, u) for u in USERS))
    except BaseException:
        await system.stop()
        raise
    return system


def browser_url(system: DevSystem) -> str:
    """The API as the browser must address it: a `Secure` cookie is kept on http://localhost,
    which Chromium counts as a secure context, but not on http://127.0.0.1."""
    return system.api_url.replace("://127.0.0.1:", "://localhost:")


async def new_context(
    browser: Browser, system: DevSystem, width: int = 1200, height: int = 800
) -> BrowserContext:
    context = await browser.new_context(
        base_url=browser_url(system),
        viewport={"width": width, "height": height},
        locale="en-GB",
        timezone_id=system.config["timezone"],
    )
    context.set_default_timeout(10_000)
    return context


async def sign_in(page: Page, user_id: str, password: str = PASSWORD) -> None:
    """Through the form, as a person would; waits until the user's home page has loaded."""
    await page.goto("/console/login")
    await page.fill("#user_id", user_id)
    await page.fill("#password", password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/console(/care)?$"))


async def save_screenshots(test_name: str, contexts: list[BrowserContext]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", test_name)
    for i, context in enumerate(contexts):
        for j, page in enumerate(context.pages):
            where = re.sub(r"[^\w.-]+", "_", page.url.split("/", 3)[-1]) or "blank"
            path = ARTIFACTS / f"{safe}-{i}.{j}-{where}.png"
            try:
                await page.screenshot(path=str(path), full_page=True)
            # A lost screenshot must not hide the failure it was taken for.
            except Exception as exc:
                print(f"screenshot of {page.url} not saved: {exc!r}")
            else:
                print(f"screenshot saved: {path}")
