"""Browser fixtures: the running system, Debian's Chromium driven by Playwright, signed-in pages.

Playwright's own browser downloads do not work here, so the tests drive `/usr/bin/chromium`
(`make test` installs it with apt-get). A missing Chromium fails the tests: skipping would let a
machine without a browser report a green console.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.stack import EmbeddedStack
from tests.browser.pages import PageFactory, new_context, save_screenshots, sign_in, start_system

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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(stack: EmbeddedStack) -> AsyncIterator[DevSystem]:
    s = await start_system(stack)
    try:
        yield s
    finally:
        await s.stop()


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
