"""The hosted billing page in Chromium (Debian's /usr/bin/chromium): opened through a
portal session, shown at phone, tablet and desktop widths with no serious accessibility
violation, and plan changes made through its forms that reach Stripe (the sandbox, read
back) and the tier in Postgres; a used or expired link gets a page, never the billing
page."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from playwright.async_api import Browser, Page

from tests.subscription.conftest import BillingStack
from tests.support.axe import assert_accessible
from tests.support.browser import screenshot
from tests.support.harness import auth
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.subscription import subscription_workflow_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The platform collected this card (a test card: only tests may name one).
CARD = "pm_card_visa"


async def _portal_url(stack: BillingStack, user_id: str) -> str:
    created = await stack.api.post(f"/v1/users/{user_id}/portal-sessions", headers=auth())
    assert created.status_code == 201, created.text
    # The link names the configured public URL; this test's API listens elsewhere.
    parts = urlsplit(created.json()["url"])
    return f"{stack.api_url}{parts.path}?{parts.query}"


async def _billing_row(db: asyncpg.Pool, user_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT b.tier, b.cancel_at_period_end, u.tier AS user_tier "
        "FROM billing b JOIN users u ON u.id = b.user_id WHERE b.user_id = $1",
        uuid.UUID(user_id),
    )
    assert row is not None
    return dict(row)


async def _stripe_subscription(stack: BillingStack, user_id: str) -> Any:
    subscription_id = (await stack.subscription(user_id))["stripe_subscription_id"]
    return await stack.stripe.v1.subscriptions.retrieve_async(subscription_id)


async def _submit(page: Page, label: str) -> None:
    async with page.expect_navigation():
        await page.get_by_role("button", name=label).click()


async def test_billing_page_in_a_browser(
    billing_stack: BillingStack, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    upgraded = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "enterprise", "payment_method": CARD},
        headers=auth(),
    )
    assert upgraded.status_code == 200, upgraded.text
    # The first invoice reaches the mirror through Stripe's events.
    await eventually(
        lambda: stack.api.get(f"/v1/users/{user_id}/invoices", headers=auth()),
        lambda response: bool(response.json()["data"]),
    )
    url = await _portal_url(stack, user_id)

    # CSP bypassed only so that axe-core can be injected (an inline script).
    context = await browser.new_context(viewport={"width": 320, "height": 800})
    page = await context.new_page()
    try:
        await page.goto(url)
        assert urlsplit(page.url).path == "/v1/billing"
        assert await page.locator("#tier").inner_text() == "Enterprise"
        assert await page.get_by_role("link", name="View invoice").count() >= 1
        for width in (320, 768, 1920):
            await page.set_viewport_size({"width": width, "height": 900})
            await screenshot(page, f"billing-{width}")
            await assert_accessible(page)
            # Nothing wider than the window: no sideways scrolling on a phone.
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow}px wider than {width}px"

        await _submit(page, "Switch to Pro")
        assert "Your plan was changed." in await page.content()
        assert await page.locator("#tier").inner_text() == "Pro"
        stripe_sub = await _stripe_subscription(stack, user_id)
        assert (
            stripe_sub["items"]["data"][0]["price"]["id"]
            == stack.prices["STRIPE_PRICE_PRO_MONTHLY"]
        )
        assert (await _billing_row(db_pool, user_id))["tier"] == "pro"

        await _submit(page, "Cancel at the end of the period")
        assert "will end at the close of the current period" in await page.content()
        assert (await _stripe_subscription(stack, user_id))["cancel_at_period_end"] is True
        await screenshot(page, "billing-canceling")
        await assert_accessible(page)

        await _submit(page, "Keep my subscription")
        assert "the cancellation was undone" in await page.content()
        assert (await _stripe_subscription(stack, user_id))["cancel_at_period_end"] is False
        row = await _billing_row(db_pool, user_id)
        assert (row["tier"], row["user_tier"], row["cancel_at_period_end"]) == (
            "pro", "pro", False,
        )  # fmt: skip

        # A refusal is the page again, with the workflow's message and its status.
        refused = await page.request.post(
            f"{stack.api_url}/v1/billing/reactivate",
            form={"csrf": await page.locator("input[name=csrf]").first.input_value()},
            headers={"Accept": "text/html"},
        )
        assert refused.status == 409
        assert "not set to cancel; nothing to reactivate" in await refused.text()
    finally:
        await context.close()


async def test_a_used_or_expired_link_gets_a_page_not_the_billing_page(
    billing_stack: BillingStack, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    used = await _portal_url(stack, user_id)
    expired = await _portal_url(stack, user_id)
    await db_pool.execute(
        "UPDATE portal_sessions SET expires_at = now() - interval '1 second' "
        "WHERE user_id = $1 AND used_at IS NULL AND token_sha256 = encode(sha256($2), 'hex')",
        uuid.UUID(user_id),
        urlsplit(expired).query.removeprefix("session=").encode(),
    )
    first = await browser.new_page()
    try:
        await first.goto(used)
        assert urlsplit(first.url).path == "/v1/billing"
    finally:
        await first.close()
    for name, link in (("used", used), ("expired", expired)):
        # A fresh browser: no billing cookie from the first open.
        context = await browser.new_context(viewport={"width": 320, "height": 700})
        page = await context.new_page()
        try:
            response = await page.goto(link)
            assert response is not None and response.status == 410
            assert urlsplit(page.url).path == "/v1/billing/enter"
            text = await page.locator("main").inner_text()
            assert "This billing link has expired; ask onramp for a new one" in text
            assert "Change your plan" not in text
            await screenshot(page, f"billing-link-{name}")
            await assert_accessible(page)
        finally:
            await context.close()


async def test_payment_method_changed_on_stripes_page(
    billing_stack: BillingStack, browser: Browser
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    upgraded = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": CARD},
        headers=auth(),
    )
    assert upgraded.status_code == 200, upgraded.text
    before = (await _stripe_subscription(stack, user_id))["default_payment_method"]
    url = await _portal_url(stack, user_id)
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.get_by_role("button", name="Change payment method").click()
        await page.wait_for_url("**/_sandbox/pages/checkout/**")
        assert "Save a payment method" in await page.content()
        await page.select_option("#payment_method", "pm_card_mastercard")
        async with page.expect_response("**/pay") as saved:
            await page.click("#pay")
        location = (await saved.value).headers["location"]
        # Stripe sends the browser back to the configured public URL; this test's API
        # listens elsewhere on the same host (the billing cookie is the host's).
        public = stack.settings.onramp_public_url
        assert location == f"{public}/v1/billing?done=payment_method"
        # In a page of its own: the first one is still failing to reach the public URL.
        landing = await context.new_page()
        await landing.goto(location.replace(public, stack.api_url, 1))
        assert "Stripe is confirming your new payment method" in await landing.content()
    finally:
        await context.close()

    async def default_card() -> Any:
        subscription = await _stripe_subscription(stack, user_id)
        pm_id = subscription["default_payment_method"]
        return await stack.stripe.v1.payment_methods.retrieve_async(pm_id)

    changed = await eventually(
        default_card, lambda pm: pm.id != before and pm.card.last4 == "4444", seconds=60
    )
    customer = await stack.stripe.v1.customers.retrieve_async(str(changed.customer))
    assert customer.invoice_settings is not None
    assert customer.invoice_settings.default_payment_method == changed.id
    await record_history(
        stack.temporal, subscription_workflow_id(user_id), "subscription_payment_method_setup"
    )
