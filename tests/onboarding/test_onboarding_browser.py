"""The full journey in a real headless Chromium (Debian's /usr/bin/chromium): the
service's link → Stripe's (sandbox's) hosted page → click → back on the service's
return URL → `account.updated` → completed."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser

from tests.onboarding.conftest import Served, serve_onboarding
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


@pytest.fixture
async def served(stack: Stack, db_pool: asyncpg.Pool) -> Any:
    async with serve_onboarding(stack, db_pool, webhooks=True, poll_seconds=60) as served:
        yield served


async def test_onboarding_in_a_browser_completes(served: Served, browser: Browser) -> None:
    user_id, _ = await served.signup()
    issued = await served.issue(user_id)

    # The return is the trigger here: `account.updated` is held back until the end, so
    # the workflow learns of the completion from the re-read the return asks for (a
    # return that arrives after the webhook completed the token starts nothing).
    (await served.stack.sandbox.http.post("/_sandbox/webhooks/hold", json={})).raise_for_status()
    try:
        await _click_through(served, issued["url"], browser)

        async def completed() -> bool:
            return bool((await served.status(user_id))["token_status"] == "completed")

        await served.wait_for(completed, "completion")
    finally:
        released = await served.stack.sandbox.http.post(
            "/_sandbox/webhooks/release", json={"order": "created", "duplicates": 1}
        )
        released.raise_for_status()
    status = await served.status(user_id)
    assert status["details_submitted"] and status["charges_enabled"] and status["payouts_enabled"]
    assert status["returned_at"] is not None


async def _click_through(served: Served, url: str, browser: Browser) -> None:
    page = await browser.new_page()
    try:
        await page.goto(url)
        assert "/_sandbox/pages/connect/" in page.url
        async with page.expect_navigation(url=f"{served.base_url}/v1/connect/return**"):
            await page.click("#complete")
        assert "Thank you" in await page.content()
    finally:
        await page.close()
