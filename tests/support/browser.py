"""Debian's headless Chromium for the browser tests, as pytest fixtures (registered for
the whole suite in tests/conftest.py).

The browser is never downloaded (`playwright install` cannot work here): a missing
`/usr/bin/chromium` fails the test and says how to install it (`make test` does, as root).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright

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


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; a missing browser fails the test, it is never downloaded."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "the tests never download a browser",
            pytrace=False,
        )
    return str(CHROMIUM)


class SharedChromium:
    """One headless Chromium for the session's browser tests: launching and closing it
    costs most of a second, paid once instead of once per test. Tests stay apart as
    before: each works in browser contexts of its own (`new_page`/`new_context`), which
    are closed after it; a browser that went away is launched again."""

    def __init__(self, playwright: Playwright) -> None:
        self._playwright = playwright
        self._browser: Browser | None = None

    async def get(self, executable: str) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, headless=True
            )
        return self._browser

    async def close(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            await self._browser.close()
        self._browser = None


@pytest.fixture(scope="session")
async def shared_chromium() -> AsyncIterator[SharedChromium]:
    """Playwright and its Chromium, started at the first browser test of the session."""
    async with async_playwright() as playwright:
        shared = SharedChromium(playwright)
        try:
            yield shared
        finally:
            await shared.close()


@pytest.fixture
async def browser(chromium: str, shared_chromium: SharedChromium) -> AsyncIterator[Browser]:
    """The session's Chromium; the contexts (and so the pages) a test opened are closed
    after it, whatever it left open."""
    launched = await shared_chromium.get(chromium)
    before = set(launched.contexts)
    try:
        yield launched
    finally:
        if launched.is_connected():
            for context in launched.contexts:
                if context not in before:
                    await context.close()


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


async def screenshot(page: Page, name: str) -> Path:
    """Save the page as `test-artifacts/screenshots/<name>.png` (gitignored), so anyone
    can look at what a browser test saw after `make test`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
