"""The hosted Checkout and onboarding pages in a real headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright): click, land on the app's URL, webhook sent."""

from __future__ import annotations

import asyncio

import pytest
import stripe
from playwright.async_api import Browser

from tests.sandbox.helpers import Receiver, make_price

pytestmark = pytest.mark.browser


async def test_checkout_page_pays_and_redirects(
    browser: Browser, client: stripe.StripeClient, receiver: Receiver
) -> None:
    price = make_price(client, 4200)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": f"{receiver.url}/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{receiver.url}/cancel",
        }
    )
    assert session.url is not None
    page = await browser.new_page()
    await page.goto(session.url)
    assert "$42.00" in (await page.text_content("#pay") or "")

    await page.select_option("#payment_method", "pm_card_chargeDeclined")
    await page.click("#pay")
    await page.wait_for_selector("#error")
    assert "declined" in (await page.text_content("#error") or "")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    await page.select_option("#payment_method", "pm_card_visa")
    await page.click("#pay")
    await page.wait_for_url(f"{receiver.url}/success?session_id={session.id}")
    assert "Landed" in (await page.text_content("#landed") or "")

    event = await asyncio.to_thread(
        receiver.wait_for_event, "checkout.session.completed", session.id
    )
    assert event["data"]["object"]["payment_status"] == "paid"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


async def test_onboarding_page_completes_and_returns(
    browser: Browser, client: stripe.StripeClient, receiver: Receiver
) -> None:
    account = client.v1.accounts.create(params={"type": "express", "email": "s@example.com"})
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": f"{receiver.url}/refresh",
            "return_url": f"{receiver.url}/return",
        }
    )
    page = await browser.new_page()
    await page.goto(link.url)
    await page.click("#complete")
    await page.wait_for_url(f"{receiver.url}/return")

    event = await asyncio.to_thread(
        receiver.wait_for_event, "account.updated", account.id, "/connect"
    )
    assert event["account"] == account.id
    assert client.v1.accounts.retrieve(account.id).charges_enabled is True

    await page.goto(link.url)  # used: Stripe sends the user to refresh_url
    await page.wait_for_url(f"{receiver.url}/refresh")
