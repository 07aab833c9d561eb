"""The whole journey as a person walks it, in Debian's headless Chromium: signup through
the API → Stripe's (the sandbox's) hosted Checkout → pay → the hosted status page, which
moves on to "check your email" by itself (the same document, never reloaded) → the
email's link → the set-password page → the platform's dashboard. A screenshot of each
step is saved under test-artifacts/screenshots/ (journey-NN-…)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from playwright.async_api import Browser, Page, Route, expect

from tests.checkout.conftest import PASSWORD, CheckoutStack, OpenStack, link_in
from tests.support.axe import accessible_at
from tests.support.browser import screenshot
from tests.support.polling import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DASHBOARD = "https://platform.example/dashboard"


async def _dashboard(route: Route) -> None:
    # The platform's dashboard is not ours: the browser is answered here, not by DNS.
    await route.fulfill(
        status=200, content_type="text/html", body="<title>Dashboard</title><h1>Dashboard</h1>"
    )


async def _pay_on_hosted_checkout(page: Page, url: str) -> None:
    await page.goto(url)
    assert "/_sandbox/pages/" in page.url
    await screenshot(page, "journey-01-hosted-checkout")
    await page.select_option("#payment_method", "pm_card_visa")
    async with page.expect_navigation(url="**/v1/checkout/status-page?view=*"):
        await page.click("#pay")


async def test_a_person_goes_from_checkout_to_the_dashboard(
    checkout_stack: OpenStack, browser: Browser
) -> None:
    overrides = {"checkout_success_url": None, "dashboard_url": DASHBOARD}
    async with checkout_stack(api_overrides=overrides) as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        context = await browser.new_context()
        await context.route(f"{DASHBOARD}**", _dashboard)
        page = await context.new_page()
        try:
            await _pay_on_hosted_checkout(page, started["url"])
            status_url = page.url
            assert status_url.startswith(f"{stack.api_url}/v1/checkout/status-page?view=")
            # Set once: still there later only if the document was never reloaded.
            await page.evaluate("window.__loaded = true")
            await screenshot(page, "journey-02-status-page")
            await accessible_at(browser, status_url)

            await expect(page.locator("h1")).to_have_text(
                "Check your email to set your password", timeout=60_000
            )
            assert await page.evaluate("window.__loaded === true"), "the page was reloaded"
            await expect(page.locator("#status-steps li[aria-current=step]")).to_contain_text(
                "Password set"
            )
            await screenshot(page, "journey-03-check-your-email")
            await accessible_at(browser, status_url)

            messages = await eventually(
                lambda: _messages(stack, address), lambda found: len(found) == 1, seconds=30
            )
            link = link_in(messages[0])
            await page.goto(link)
            await screenshot(page, "journey-04-set-password")
            await page.get_by_label("New password").fill(PASSWORD)
            async with page.expect_navigation(url=f"{DASHBOARD}**"):
                await page.get_by_role("button", name="Set password").click()
            await expect(page.locator("h1")).to_have_text("Dashboard")
            await screenshot(page, "journey-05-dashboard")

            # The status link now says all is set, with the way to the dashboard.
            await page.goto(status_url)
            await expect(page.locator("h1")).to_have_text("You are all set")
            await expect(page.get_by_role("link", name="Go to your dashboard")).to_have_attribute(
                "href", DASHBOARD
            )
            await screenshot(page, "journey-06-status-all-set")
            await accessible_at(browser, status_url)
        finally:
            await context.close()


async def _messages(stack: CheckoutStack, address: str) -> list[EmailMessage]:
    return stack.mail.to(address)
