"""Debian's headless Chromium for the browser tests, as pytest fixtures (registered for
the whole suite in tests/conftest.py).

The browser is never downloaded (`playwright install` cannot work here): a missing
`/usr/bin/chromium` fails the test and says how to install it (`make test` does, as root).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

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


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


async def screenshot(page: Page, name: str) -> Path:
    """Save the page as `test-artifacts/screenshots/<name>.png` (gitignored), so anyone
    can look at what a browser test saw after `make test`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
