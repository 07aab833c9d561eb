"""The checkout hand-over (update `checkout_handover`: re-read the subscription from
Stripe, record it and the tier) and the payment-method route."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from tests.subscription.conftest import BillingStack
from tests.support.harness import auth
from workflows.contracts.subscription import (
    CHECKOUT_HANDOVER_UPDATE,
    SUBSCRIPTION_WORKFLOW,
    CheckoutHandoverRequest,
    SubscriptionView,
    SubscriptionWorkflowInput,
    subscription_workflow_id,
)


async def test_checkout_handover_records_the_subscription_and_tier(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    # What a paid checkout leaves behind: the user's customer and an active subscription.
    customer = await stack.stripe.v1.customers.create_async({"email": "x@example.com"})
    await db_pool.execute(
        "UPDATE users SET stripe_customer_id = $2 WHERE id = $1", uuid.UUID(user_id), customer.id
    )
    pm = await stack.stripe.v1.payment_methods.attach_async(
        "pm_card_visa", {"customer": customer.id}
    )
    sub = await stack.stripe.v1.subscriptions.create_async(
        {
            "customer": customer.id,
            "items": [{"price": stack.prices["STRIPE_PRICE_ENTERPRISE_YEARLY"]}],
            "default_payment_method": pm.id,
        }
    )
    start: WithStartWorkflowOperation[object, object] = WithStartWorkflowOperation(
        SUBSCRIPTION_WORKFLOW,
        SubscriptionWorkflowInput(user_id=user_id),
        id=subscription_workflow_id(user_id),
        task_queue=stack.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    view = await stack.temporal.execute_update_with_start_workflow(
        CHECKOUT_HANDOVER_UPDATE,
        CheckoutHandoverRequest(subscription_id=sub.id),
        start_workflow_operation=start,
        result_type=SubscriptionView,
    )
    assert view.tier == "enterprise" and view.stripe_subscription_id == sub.id
    body = await stack.subscription(user_id)
    assert (body["tier"], body["billing_cycle"], body["status"]) == (
        "enterprise", "yearly", "active",
    )  # fmt: skip
    user_tier = await db_pool.fetchval("SELECT tier FROM users WHERE id = $1", uuid.UUID(user_id))
    assert user_tier == "enterprise"


@pytest.mark.slow
async def test_payment_method_route(billing_stack: BillingStack) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    path = f"/v1/users/{user_id}/subscription/payment-method"
    refused = await stack.api.put(path, json={"payment_method": "pm_card_visa"}, headers=auth())
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "no_stripe_billing"
    upgraded = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": "pm_card_visa"},
        headers=auth(),
    )
    assert upgraded.status_code == 200, upgraded.text
    sub_id = upgraded.json()["stripe_subscription_id"]
    before = (await stack.stripe.v1.subscriptions.retrieve_async(sub_id)).default_payment_method
    changed = await stack.api.put(
        path, json={"payment_method": "pm_card_mastercard"}, headers=auth()
    )
    assert changed.status_code == 200, changed.text
    after = await stack.stripe.v1.subscriptions.retrieve_async(sub_id)
    assert after.default_payment_method not in (None, before)
    customer = await stack.stripe.v1.customers.retrieve_async(after.customer)  # type: ignore[arg-type]
    assert customer.invoice_settings is not None
    assert customer.invoice_settings.default_payment_method == after.default_payment_method
