"""Browser fixtures: the running system, Debian's Chromium driven by Playwright, signed-in pages.

Playwright's own browser downloads do not work here, so the tests drive `/usr/bin/chromium`
(`make test` installs it with apt-get). A missing Chromium fails the tests: skipping would let a
machine without a browser report a green console.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from goldenhour.dev.devsystem import DevSystem, directory
from goldenhour.dev.stack import EmbeddedStack
from tests.e2e.console_client import PASSWORD, set_password

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = ("lbh-dm1", "lbh-sw1", "mps-cr1", "oak-staff1", "elm-staff1")

PageFactory = Callable[..., Awaitable[Page]]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(stack: EmbeddedStack) -> AsyncIterator[DevSystem]:
    s = await start_system(stack)
    try:
        yield s
    finally:
        await s.stop()


def browser_url(system: DevSystem) -> str:
    """The API as the browser must address it: a `Secure` cookie is kept on http://localhost,
    which Chromium counts as a secure context, but not on http://127.0.0.1."""
    return system.api_url.replace("://127.0.0.1:", "://localhost:")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with "
            "`make browser` (apt-get install chromium chromium-driver); Playwright's own "
            "browser downloads are not used."
        )
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            await b.close()


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


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(
    request: pytest.FixtureRequest, browser: Browser, system: DevSystem
) -> AsyncIterator[PageFactory]:
    """Open a page in a browser context of its own (signed in as `user`, if given).

    When the test fails, every page still open is saved as a screenshot under tests/artifacts/.
    """
    contexts: list[BrowserContext] = []

    async def open_(user: str | None = None, width: int = 1200, height: int = 800) -> Page:
        context = await new_context(browser, system, width, height)
        contexts.append(context)
        page = await context.new_page()
        if user:
            await sign_in(page, user)
        return page

    try:
        yield open_
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            await save_screenshots(request.node.name, contexts)
        for context in contexts:
            await context.close()


async def save_screenshots(test_name: str, contexts: list[BrowserContext]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", test_name)
    for i, context in enumerate(contexts):
        for j, page in enumerate(context.pages):
            where = re.sub(r"[^\w.-]+", "_", page.url.split("/", 3)[-1]) or "blank"
            path = ARTIFACTS / f"{safe}-{i}.{j}-{where}.png"
            try:
                await page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # noqa: BLE001 - a lost screenshot must not hide the failure
                print(f"screenshot of {page.url} not saved: {exc!r}")
            else:
                print(f"screenshot saved: {path}")
