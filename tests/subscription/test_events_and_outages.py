"""Events and Stripe outages (subscription side), over HTTP on a running stack:
every event under `invoice.*`/`customer.subscription.*` is safe, and a Stripe outage
never drops an event — a dashboard-made plan change applies on its own once Stripe
answers again."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from devstack.stripe_events import event_body, event_id_of, sign
from tests.subscription.conftest import BillingStack
from tests.support.harness import WEBHOOK_SECRETS, auth
from tests.support.polling import eventually
from workflows.contracts.subscription import SubscriptionState, subscription_workflow_id

pytestmark = pytest.mark.slow


@pytest.fixture
def worker_overrides() -> dict[str, Any]:
    # Short budgets so that an outage of seconds outlasts the re-read's own retries
    # (production: 2 min, then 30 s doubling to 15 min). Every event that arrives during
    # the outage spends one budget in turn (the workflow's lock), so the budget sets how
    # long the outage test waits. 3 s is also the attempt's start-to-close timeout: twice
    # what one refused read takes with stripe's own two retries of a 503, so an attempt
    # ends with the 503 or the budget, never its own timeout; the outage lasts until an
    # event was re-read a second time.
    return {
        "subscription_reread_budget_seconds": 3.0,
        "subscription_retry_initial_seconds": 0.5,
        "subscription_retry_max_seconds": 1.0,
    }


async def _inbox(db: asyncpg.Pool, event_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT status, status_reason, attempts, target_workflow_id FROM webhook_events "
        "WHERE event_id = $1",
        event_id,
    )
    return row


async def test_upcoming_and_deleted_invoices_are_ignored_with_a_reason(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    pro = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": "pm_card_visa"},
        headers=auth(),
    )
    assert pro.status_code == 200, pro.text
    customer = pro.json()["stripe_customer_id"]
    # invoice.upcoming has no invoice id (Stripe's preview of the next renewal);
    # invoice.deleted names a draft that no longer exists.
    upcoming = event_body(
        "invoice.upcoming", {"object": "invoice", "customer": customer, "status": "draft"}
    )
    deleted = event_body(
        "invoice.deleted",
        {"id": "in_deleteddraft01", "object": "invoice", "customer": customer, "status": "draft"},
    )
    for body in (upcoming, deleted):
        response = await stack.api.post(
            "/v1/webhooks/stripe", content=body, headers=sign(body, WEBHOOK_SECRETS[0])
        )
        assert response.status_code == 200, response.text
    for body, reason in ((upcoming, "preview without an invoice id"), (deleted, "is gone")):
        row = await eventually(
            lambda body=body: _inbox(db_pool, event_id_of(body)),  # type: ignore[misc]
            lambda row: row is not None and row["status"] != "pending",
        )
        assert row is not None
        assert row["status"] == "ignored" and reason in row["status_reason"], dict(row)
        assert row["target_workflow_id"] is None, "never handed to a workflow"
    handle = stack.temporal.get_workflow_handle(subscription_workflow_id(user_id))
    state = await handle.query("status", result_type=SubscriptionState)
    assert not state.pending_events
    assert event_id_of(upcoming) not in state.applied_event_ids


async def test_dashboard_plan_change_during_an_outage_applies_once_stripe_answers(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    pro = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": "pm_card_visa"},
        headers=auth(),
    )
    assert pro.status_code == 200, pro.text
    subscription_id = pro.json()["stripe_subscription_id"]
    handle = stack.temporal.get_workflow_handle(subscription_workflow_id(user_id))

    # Stripe refuses every read of the subscription; meanwhile someone changes the plan
    # in the dashboard (a direct update at Stripe, which sends its event).
    current = await stack.stripe.v1.subscriptions.retrieve_async(subscription_id)
    await stack.sandbox.add_fault(path=r"^/v1/subscriptions/sub_", method="GET", status=503)
    await stack.stripe.v1.subscriptions.update_async(
        subscription_id,
        {
            "items": [
                {
                    "id": current["items"]["data"][0]["id"],
                    "price": stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"],
                }
            ],
            "proration_behavior": "none",
        },
    )
    waiting = await eventually(
        lambda: handle.query("status", result_type=SubscriptionState),
        lambda state: any(p.attempts >= 2 for p in state.pending_events),
        seconds=120,
        interval=0.5,
    )
    stuck = next(
        p for p in waiting.pending_events if p.event.type == "customer.subscription.updated"
    )
    assert "503" in stuck.last_error or "ScheduleToClose" in stuck.last_error, stuck.last_error
    assert (await stack.subscription(user_id))["tier"] == "pro", "nothing applied blind"
    row = await _inbox(db_pool, stuck.event.event_id)
    assert row is not None and row["status"] == "dispatched"

    await stack.sandbox.clear_faults()
    applied = await eventually(
        lambda: stack.subscription(user_id), lambda body: body["tier"] == "enterprise", seconds=120
    )
    assert applied["stripe_price_id"] == stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    state = await eventually(
        lambda: handle.query("status", result_type=SubscriptionState),
        lambda state: not state.pending_events,
        seconds=120,
        interval=0.5,
    )
    assert stuck.event.event_id in state.applied_event_ids


async def test_an_event_about_an_object_gone_at_stripe_is_ignored_not_retried(
    billing_stack: BillingStack,
) -> None:
    """The re-read answers 404 (a draft deleted before its event was handled): the event
    is applied as ignored with the reason, never kept pending."""
    stack = billing_stack
    user_id = await stack.signup()
    pro = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": "pm_card_visa"},
        headers=auth(),
    )
    assert pro.status_code == 200, pro.text
    body = event_body(
        "invoice.finalized",
        {
            "id": "in_neverexisted01",
            "object": "invoice",
            "customer": pro.json()["stripe_customer_id"],
        },
    )
    response = await stack.api.post(
        "/v1/webhooks/stripe", content=body, headers=sign(body, WEBHOOK_SECRETS[0])
    )
    assert response.status_code == 200, response.text
    handle = stack.temporal.get_workflow_handle(subscription_workflow_id(user_id))
    state = await eventually(
        lambda: handle.query("status", result_type=SubscriptionState),
        lambda state: event_id_of(body) in state.applied_event_ids,
        seconds=30,
    )
    assert not state.pending_events and state.tier == "pro"
