"""Ownership on every re-read, through the real ingress.

Bob and Carol each pay for `pro`. A validly signed `invoice.paid` names Bob's invoice
and Carol's customer: the router sends it to `subscription-<carol>`, which re-reads the
invoice from Stripe, finds Bob's customer on it, logs `STRIPE_OWNERSHIP_MISMATCH` (ids
only) and changes nothing: Bob's Stripe subscription is untouched, both users' tiers and
invoice mirrors stay as they were, and Carol's later cancel touches only her own
subscription.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from devstack.stripe_events import event_body, sign
from tests.subscription import conftest as billing_fixtures
from tests.subscription.conftest import BillingStack
from tests.support.harness import WEBHOOK_SECRETS, auth
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


# The platform collected this card (a test card: only tests may name one).
CARD = "pm_card_visa"
MISMATCH = "STRIPE_OWNERSHIP_MISMATCH"

# The billing stack of the subscription tests (worker in this process, API over HTTP,
# registered at the sandbox), shared by name.
billing_stack = billing_fixtures.billing_stack
catalog = billing_fixtures.catalog
smtp_sink = billing_fixtures.smtp_sink
worker_overrides = billing_fixtures.worker_overrides
activity_overrides = billing_fixtures.activity_overrides


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage().startswith(name)]


@pytest.fixture
def workflow_logs() -> Iterator[Records]:
    """What the workflows log (the worker runs in this process)."""
    handler = Records()
    logger = logging.getLogger("temporalio.workflow")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def _paying_user(stack: BillingStack) -> dict[str, Any]:
    user_id = await stack.signup()
    response = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": CARD},
        headers=auth(),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["tier"] == "pro" and body["status"] == "active"
    customer = body["stripe_customer_id"]
    invoices = await stack.stripe.v1.invoices.list_async({"customer": customer})
    paid = [invoice.id for invoice in invoices.data if invoice.status == "paid"]
    assert paid, "the first invoice is paid"
    # Wait for the sandbox's own invoice events to reach the mirror, so what follows
    # compares a settled state.
    await eventually(
        lambda: _mirror(stack, user_id), lambda rows: paid[0] in {r["id"] for r in rows}
    )
    return {**body, "user_id": user_id, "invoice_id": paid[0]}


async def _mirror(stack: BillingStack, user_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(f"/v1/users/{user_id}/invoices", headers=auth())
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def _local(db: asyncpg.Pool, user_id: str) -> dict[str, Any]:
    """Everything onramp keeps about the user's billing, in Postgres."""
    uid = uuid.UUID(user_id)
    billing = await db.fetchrow(
        "SELECT tier, status, stripe_subscription_id, stripe_price_id, cancel_at_period_end "
        "FROM billing WHERE user_id = $1",
        uid,
    )
    invoices = await db.fetch(
        "SELECT stripe_invoice_id, stripe_subscription_id, status, amount_paid "
        "FROM invoices WHERE user_id = $1 ORDER BY stripe_invoice_id",
        uid,
    )
    return {
        "billing": dict(billing) if billing else None,
        "user_tier": await db.fetchval("SELECT tier FROM users WHERE id = $1", uid),
        "invoices": [dict(row) for row in invoices],
    }


async def _stripe_subscription(stack: BillingStack, subscription_id: str) -> dict[str, Any]:
    subscription = await stack.stripe.v1.subscriptions.retrieve_async(subscription_id)
    return {
        "status": subscription.status,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "customer": subscription.customer,
        "canceled_at": subscription.canceled_at,
    }


async def test_invoice_paid_naming_bobs_invoice_with_carols_customer_changes_nothing(
    billing_stack: BillingStack, db_pool: asyncpg.Pool, workflow_logs: Records
) -> None:
    stack = billing_stack
    bob = await _paying_user(stack)
    carol = await _paying_user(stack)
    bob_before = await _local(db_pool, bob["user_id"])
    carol_before = await _local(db_pool, carol["user_id"])
    bob_stripe_before = await _stripe_subscription(stack, bob["stripe_subscription_id"])
    assert bob_before["user_tier"] == carol_before["user_tier"] == "pro"

    forged = event_body(
        "invoice.paid",
        {
            "id": bob["invoice_id"],
            "object": "invoice",
            "customer": carol["stripe_customer_id"],
            "status": "paid",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": bob["stripe_subscription_id"]},
            },
        },
    )
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as ingress:
        answer = await ingress.post(
            "/v1/webhooks/stripe", content=forged, headers=sign(forged, WEBHOOK_SECRETS[0])
        )
    assert answer.status_code == 200, answer.text

    mismatches = await eventually(
        lambda: _async(workflow_logs.named(MISMATCH)), lambda found: len(found) >= 1
    )
    assert len(mismatches) == 1
    logged = mismatches[0]
    assert getattr(logged, "object_id", None) == bob["invoice_id"]
    assert getattr(logged, "user_id", None) == carol["user_id"]
    assert getattr(logged, "customer_id", None) == bob["stripe_customer_id"]
    # Ids only: nothing else travels in the record.
    assert "@" not in logged.getMessage()

    assert await _local(db_pool, bob["user_id"]) == bob_before
    assert await _local(db_pool, carol["user_id"]) == carol_before
    assert await _stripe_subscription(stack, bob["stripe_subscription_id"]) == bob_stripe_before

    # Carol's cancel acts on her own subscription only.
    cancel = await stack.api.post(
        f"/v1/users/{carol['user_id']}/subscription/cancel", headers=auth()
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["stripe_subscription_id"] == carol["stripe_subscription_id"]
    assert await _stripe_subscription(stack, bob["stripe_subscription_id"]) == bob_stripe_before
    assert (await _local(db_pool, bob["user_id"]))["billing"] == bob_before["billing"]
    assert len(workflow_logs.named(MISMATCH)) == 1


async def _async(value: Any) -> Any:
    return value
