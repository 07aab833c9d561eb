"""Accessibility checks with axe-core, injected into a page under test.

axe-core comes from npm (`package.json`; `make test` installs it into `node_modules/`).
A missing copy is installed here with `npm install`, never skipped: the check is part
of what a page must pass.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def axe_source() -> str:
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: install Debian's npm to run the accessibility checks")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True
        )
    return AXE.read_text()


async def accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    # Evaluated through the DevTools protocol, which the page's Content-Security-Policy
    # (`script-src 'self'`, no inline script) does not govern, unlike a <script> tag:
    # the page is checked exactly as it is served.
    await page.evaluate(axe_source())
    result: dict[str, Any] = await page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "targets": [node["target"] for node in v["nodes"]]}
        for v in result["violations"]
        if v.get("impact") in BLOCKING
    ]  # fmt: skip


async def assert_accessible(page: Page) -> None:
    violations = await accessibility_violations(page)
    assert not violations, violations


async def accessible_at(browser: Browser, url: str) -> None:
    """axe on a fresh copy of the page at `url`, beside the page under test (whose own
    state, e.g. a marker that it never reloaded, axe must not touch)."""
    page = await browser.new_page()
    try:
        await page.goto(url)
        await assert_accessible(page)
    finally:
        await page.close()
