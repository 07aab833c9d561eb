"""Payments (subscription side), end to end over HTTP: payments as
Stripe makes them — no test card in production code, a payment method the platform
collected or Checkout, 3-D Secure on Stripe's hosted invoice page (driven in a real
headless Chromium), pending price changes, one billing subscription per user."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser

from tests.subscription.conftest import BillingStack
from tests.support.harness import auth
from tests.support.polling import eventually
from workflows.contracts.subscription import (
    CHECKOUT_HANDOVER_UPDATE,
    CheckoutHandoverRequest,
    SubscriptionView,
    subscription_workflow_id,
)

ROOT = Path(__file__).resolve().parents[2]
CARD = "pm_card_visa"
AUTH_CARD = "pm_card_authenticationRequired"
DECLINING_CARD = "pm_card_chargeDeclined"


def test_no_test_card_in_production_code() -> None:
    """Test-mode payment method and token ids exist only in test mode: in live mode any
    of them is a 400 (and in test mode it silently replaces the customer's card)."""
    pattern = re.compile(r"\b(pm_card_\w+|tok_[a-z]\w*)")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("activities", "workflows", "api", "onramp")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


async def _upgrade(stack: BillingStack, user_id: str, **body: Any) -> Any:
    return await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade", json=body, headers=auth()
    )


async def _pro_then_paying_with(stack: BillingStack, card: str) -> tuple[str, Any]:
    """A new user on pro (paid with a good card) whose subscription then pays with `card`;
    the user id and the upgrade's answer."""
    user_id = await stack.signup()
    pro = await _upgrade(stack, user_id, tier="pro", payment_method=CARD)
    assert pro.status_code == 200, pro.text
    swapped = await stack.api.put(
        f"/v1/users/{user_id}/subscription/payment-method",
        json={"payment_method": card},
        headers=auth(),
    )
    assert swapped.status_code == 200, swapped.text
    return user_id, pro


async def _stripe_writes(stack: BillingStack, user_id: str, path: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in await stack.sandbox.requests()
        if entry["method"] == "POST"
        and re.fullmatch(path, entry["path"])
        and (entry["idempotency_key"] or "").startswith(f"subscription-{user_id}/")
    ]


async def _live_subscriptions(stack: BillingStack, customer: str) -> list[Any]:
    listed = await stack.stripe.v1.subscriptions.list_async(
        {"customer": customer, "status": "all", "limit": 100}
    )
    return [sub for sub in listed.data if sub.status not in ("canceled", "incomplete_expired")]


async def test_free_user_without_a_card_is_sent_to_checkout(billing_stack: BillingStack) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    refused = await _upgrade(stack, user_id, tier="pro", billing_cycle="yearly")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"]["code"] == "payment_method_required"
    assert body["next_action"] == {
        "type": "checkout",
        "method": "POST",
        "path": "/v1/checkout",
        "body": {"user_id": user_id, "tier": "pro", "billing_cycle": "yearly"},
    }
    assert await _stripe_writes(stack, user_id, r"/v1/.*") == []
    assert (await stack.subscription(user_id))["tier"] == "free"


@pytest.mark.slow
async def test_paid_user_changes_price_on_the_subscriptions_own_card(
    billing_stack: BillingStack,
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    first = await _upgrade(stack, user_id, tier="pro", payment_method=CARD)
    assert first.status_code == 200, first.text
    assert (first.json()["tier"], first.json()["status"]) == ("pro", "active")
    attached = await _stripe_writes(stack, user_id, r"/v1/payment_methods/.*/attach")
    changed = await _upgrade(stack, user_id, tier="enterprise")
    assert changed.status_code == 200, changed.text
    assert changed.json()["tier"] == "enterprise"
    assert changed.json()["stripe_price_id"] == stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    assert changed.json()["payment_state"] == "settled" and changed.json()["next_action"] is None
    assert await _stripe_writes(stack, user_id, r"/v1/payment_methods/.*/attach") == attached
    updates = await _stripe_writes(stack, user_id, r"/v1/subscriptions/sub_\w+")
    assert [u["idempotency_key"].rsplit("/", 1)[-1] for u in updates] == ["change_price"]


@pytest.mark.browser
async def test_upgrade_needing_authentication_completed_in_the_browser(
    billing_stack: BillingStack, browser: Browser
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    answer = await _upgrade(stack, user_id, tier="pro", payment_method=AUTH_CARD)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["tier"], body["status"], body["payment_state"]) == (
        "free", "incomplete", "requires_action",
    )  # fmt: skip
    action = body["next_action"]
    assert action["type"] == "authenticate_payment" and action["change"] == "new_subscription"
    assert action["url"].endswith(f"/_sandbox/pages/invoices/{action['invoice_id']}")
    assert (await stack.subscription(user_id))["next_action"] == action

    page = await browser.new_page()
    await page.goto(action["url"])
    await page.click("#authenticate")
    await page.wait_for_function("document.querySelector('#status').textContent === 'paid'")
    done = await eventually(
        lambda: stack.subscription(user_id), lambda s: s["tier"] == "pro", seconds=30
    )
    assert (done["status"], done["payment_state"], done["next_action"]) == (
        "active", "settled", None,
    )  # fmt: skip
    assert len(await _live_subscriptions(stack, done["stripe_customer_id"])) == 1


@pytest.mark.browser
async def test_failed_authentication_keeps_the_old_tier_and_one_subscription(
    billing_stack: BillingStack, browser: Browser, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    answer = await _upgrade(stack, user_id, tier="pro", payment_method=AUTH_CARD)
    assert answer.status_code == 202, answer.text
    action = answer.json()["next_action"]
    page = await browser.new_page()
    await page.goto(action["url"])
    await page.click("#fail_authentication")
    await page.wait_for_selector("#pay")
    # Stripe's invoice.payment_failed reaches the workflow; nothing is granted.
    await eventually(
        lambda: db_pool.fetchval(
            "SELECT count(*) FROM webhook_events WHERE type = 'invoice.payment_failed' "
            "AND user_id = $1 AND status = 'dispatched'",
            uuid.UUID(user_id),
        ),
        lambda count: count >= 1,
        seconds=30,
    )
    after = await stack.subscription(user_id)
    assert (after["tier"], after["status"]) == ("free", "incomplete")
    customer = after["stripe_customer_id"]
    assert [sub.status for sub in await _live_subscriptions(stack, customer)] == ["incomplete"]

    # While that payment waits, another change is refused; another card replaces the
    # unpaid attempt (canceled first): still one subscription.
    again = await _upgrade(stack, user_id, tier="enterprise")
    assert again.status_code == 409 and again.json()["error"]["code"] == "payment_pending"
    replaced = await _upgrade(stack, user_id, tier="pro", payment_method=CARD)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["tier"], replaced.json()["payment_state"]) == ("pro", "settled")
    live = await _live_subscriptions(stack, customer)
    assert [(sub.id, sub.status) for sub in live] == [
        (replaced.json()["stripe_subscription_id"], "active")
    ]


@pytest.mark.slow
async def test_price_change_declined_keeps_the_old_plan(billing_stack: BillingStack) -> None:
    stack = billing_stack
    user_id, pro = await _pro_then_paying_with(stack, DECLINING_CARD)
    declined = await _upgrade(stack, user_id, tier="enterprise")
    assert declined.status_code == 400, declined.text
    assert declined.json()["error"]["code"] == "card_declined"
    body = await stack.subscription(user_id)
    assert (body["tier"], body["status"], body["stripe_price_id"]) == (
        "pro", "active", stack.prices["STRIPE_PRICE_PRO_MONTHLY"],
    )  # fmt: skip
    at_stripe = await stack.stripe.v1.subscriptions.retrieve_async(
        pro.json()["stripe_subscription_id"]
    )
    assert at_stripe["items"]["data"][0]["price"]["id"] == stack.prices["STRIPE_PRICE_PRO_MONTHLY"]
    assert at_stripe.status == "active"


@pytest.mark.slow
async def test_price_change_needing_authentication_applies_once_authenticated(
    billing_stack: BillingStack,
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    pro = await _upgrade(stack, user_id, tier="pro", payment_method=AUTH_CARD)
    assert pro.status_code == 202, pro.text
    first = pro.json()["next_action"]["invoice_id"]
    done = await stack.sandbox.http.post(
        f"/_sandbox/invoices/{first}/authenticate", json={"outcome": "succeed"}
    )
    assert done.status_code == 200, done.text
    await eventually(lambda: stack.subscription(user_id), lambda s: s["tier"] == "pro")

    waiting = await _upgrade(stack, user_id, tier="enterprise")
    assert waiting.status_code == 202, waiting.text
    body = waiting.json()
    assert (body["tier"], body["payment_state"], body["next_action"]["change"]) == (
        "pro", "requires_action", "price_change",
    )  # fmt: skip
    assert body["stripe_price_id"] == stack.prices["STRIPE_PRICE_PRO_MONTHLY"]
    invoice = body["next_action"]["invoice_id"]
    done = await stack.sandbox.http.post(
        f"/_sandbox/invoices/{invoice}/authenticate", json={"outcome": "succeed"}
    )
    assert done.status_code == 200, done.text
    applied = await eventually(
        lambda: stack.subscription(user_id), lambda s: s["tier"] == "enterprise", seconds=30
    )
    assert applied["stripe_price_id"] == stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    assert applied["payment_state"] == "settled"


async def _checkout(stack: BillingStack, user_id: str) -> Any:
    response = await stack.api.post(
        "/v1/checkout",
        json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
        headers=auth(),
    )
    return response


@pytest.mark.slow
async def test_checkout_then_api_upgrade_end_with_one_subscription(
    billing_stack: BillingStack,
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    opened = await _checkout(stack, user_id)
    assert opened.status_code == 201, opened.text
    refused = await _upgrade(stack, user_id, tier="enterprise", payment_method=CARD)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "checkout_open"
    paid = await stack.sandbox.http.post(
        f"/_sandbox/checkout/sessions/{opened.json()['checkout_session_id']}/pay", json={}
    )
    assert paid.status_code == 200, paid.text
    body = await eventually(
        lambda: stack.subscription(user_id), lambda s: s["tier"] == "pro", seconds=30
    )
    assert len(await _live_subscriptions(stack, body["stripe_customer_id"])) == 1


@pytest.mark.slow
async def test_api_upgrade_then_checkout_and_a_second_subscription_end_with_one(
    billing_stack: BillingStack,
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    upgraded = await _upgrade(stack, user_id, tier="pro", payment_method=CARD)
    assert upgraded.status_code == 200, upgraded.text
    kept = upgraded.json()["stripe_subscription_id"]
    customer = upgraded.json()["stripe_customer_id"]
    refused = await _checkout(stack, user_id)
    assert refused.status_code == 409, refused.text

    # A second subscription of the user's customer appears anyway (a hand-over that
    # raced, or one made in the dashboard): it is canceled at Stripe at once.
    second = await stack.stripe.v1.subscriptions.create_async(
        {
            "customer": customer,
            "items": [{"price": stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]}],
        }
    )
    handle = stack.temporal.get_workflow_handle(subscription_workflow_id(user_id))
    view = await handle.execute_update(
        CHECKOUT_HANDOVER_UPDATE,
        CheckoutHandoverRequest(subscription_id=second.id),
        result_type=SubscriptionView,
    )
    assert (view.stripe_subscription_id, view.tier) == (kept, "pro")
    live = await eventually(
        lambda: _live_subscriptions(stack, customer), lambda subs: len(subs) == 1, seconds=30
    )
    assert live[0].id == kept
    assert (await stack.stripe.v1.subscriptions.retrieve_async(second.id)).status == "canceled"


@pytest.mark.slow
async def test_renewal_needing_authentication_waits_for_the_customer(
    billing_stack: BillingStack,
) -> None:
    stack = billing_stack
    user_id, pro = await _pro_then_paying_with(stack, AUTH_CARD)
    at_stripe = await stack.stripe.v1.subscriptions.retrieve_async(
        pro.json()["stripe_subscription_id"]
    )
    period_end = at_stripe["items"]["data"][0]["current_period_end"]
    clock = (await stack.sandbox.http.get("/_sandbox/clock")).json()
    advanced = await stack.sandbox.http.post(
        "/_sandbox/clock/advance", json={"seconds": period_end - clock["now"] + 60}
    )
    assert advanced.status_code == 200, advanced.text
    waiting = await eventually(
        lambda: stack.subscription(user_id),
        lambda s: s["payment_state"] == "requires_action",
        seconds=30,
    )
    # Stripe's renewal waits for the customer: past_due, the tier holds for the grace
    # period, the hosted invoice page is the next action.
    assert (waiting["tier"], waiting["status"]) == ("pro", "past_due")
    assert waiting["grace_until"] is not None
    action = waiting["next_action"]
    assert action["change"] == "renewal" and action["url"].endswith(action["invoice_id"])
    done = await stack.sandbox.http.post(
        f"/_sandbox/invoices/{action['invoice_id']}/authenticate", json={"outcome": "succeed"}
    )
    assert done.status_code == 200, done.text
    paid = await eventually(
        lambda: stack.subscription(user_id),
        lambda s: s["status"] == "active" and s["payment_state"] == "settled",
        seconds=30,
    )
    assert (paid["tier"], paid["grace_until"], paid["next_action"]) == ("pro", None, None)
