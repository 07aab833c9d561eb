"""A checkout reaches paid or failed from its own re-reads, whatever Stripe's webhooks
and reads do meanwhile.

- The `checkout.session.async_payment_failed` event is lost: the session alone keeps
  saying `complete`/`unpaid`, but the subscription and its first invoice (read with it)
  say when Stripe gave up, and the checkout ends `failed` → next action `pay`.
- Stripe refuses every read (5xx, then 400) for longer than a re-read's retry budget
  while a delayed payment settles: the run keeps its state, shows the stuck step in its
  `status` query, and completes on its own once Stripe answers again.
- While a payment is confirming, or a subscription still awaits its first payment, a
  second checkout is refused: it would start a second subscription.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.checkout.conftest import CheckoutStack, OpenStack, state_of
from tests.support.harness import WEBHOOK_SECRETS, auth
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.checkout import CheckoutStatus, checkout_workflow_id

pytestmark = pytest.mark.slow


# Stripe's `incomplete` → `incomplete_expired` after 23 h without a paid first invoice.
PAST_INCOMPLETE_EXPIRY = 23 * 3600 + 120
LOST_EVENT = "checkout.session.async_payment_failed"
# Every event a platform endpoint would subscribe to, but the one that gets lost.
DELIVERED_EVENTS = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.expired",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.voided",
]


@contextlib.asynccontextmanager
async def endpoint_without(stack: CheckoutStack, events: list[str]) -> AsyncIterator[None]:
    """A webhook endpoint at the API subscribed to `events` only."""
    url = f"{stack.api_url}/v1/webhooks/stripe"
    added = await stack.sandbox.http.post(
        "/_sandbox/webhooks/endpoints",
        json={"url": url, "secret": WEBHOOK_SECRETS[0], "enabled_events": events},
    )
    added.raise_for_status()
    try:
        yield
    finally:
        await stack.sandbox.http.request(
            "DELETE", "/_sandbox/webhooks/endpoints", json={"url": url}
        )


async def run_status(stack: CheckoutStack, user_id: str) -> CheckoutStatus:
    handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
    status: CheckoutStatus = await handle.query("status", result_type=CheckoutStatus)
    return status


async def sessions_created_for(stack: CheckoutStack, user_id: str) -> int:
    customer = await stack.db.fetchval(
        "SELECT stripe_customer_id FROM users WHERE id = $1::uuid", user_id
    )
    found = await stack.stripe.v1.checkout.sessions.list_async({"customer": customer, "limit": 100})
    return len(found.data)


async def test_lost_async_payment_failed_still_ends_the_checkout_failed(
    checkout_stack: OpenStack,
) -> None:
    async with (
        checkout_stack(webhooks=False, reconcile_after=1.0) as stack,
        endpoint_without(stack, DELIVERED_EVENTS),
    ):
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        assert (await stack.pay(session_id, "pm_delayed_fail")).status_code == 200
        await stack.wait_status(user_id, lambda body: body["payment_state"] == "confirming")

        # Confirming: a second checkout would make a second subscription beside the
        # first, which the bank may still pay.
        again = await stack.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "enterprise", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "subscription_exists"

        failed = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/settle", json={}
        )
        assert failed.status_code == 200, failed.text
        session = await stack.stripe.v1.checkout.sessions.retrieve_async(session_id)
        # What the session says after the failure: nothing a re-read of it could act on.
        assert (session.status, session.payment_status) == ("complete", "unpaid")
        assert session.subscription is not None
        subscription_id = str(session.subscription)

        # Stripe ends the subscription 23 h after its first invoice went unpaid.
        advanced = await stack.sandbox.http.post(
            "/_sandbox/clock/advance", json={"seconds": PAST_INCOMPLETE_EXPIRY}
        )
        assert advanced.status_code == 200, advanced.text
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        await eventually(
            handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED, seconds=30
        )
        final = await stack.status(user_id)
        assert state_of(final) == ("unpaid", "not_started", "not_sent", "pay")
        outcome = await stack.db.fetchval(
            "SELECT payment_outcome FROM checkout_runs WHERE checkout_session_id = $1",
            session_id,
        )
        assert outcome == "failed"
        assert stack.mail.to(address) == []

        # The event was created at Stripe and never delivered: the re-reads decided.
        events = await stack.stripe.v1.events.list_async({"type": LOST_EVENT, "limit": 100})
        created = [e.id for e in events.data if e.data.object["id"] == session_id]
        assert len(created) == 1
        deliveries = (await stack.sandbox.http.get("/_sandbox/webhooks/deliveries")).json()
        assert [d for d in deliveries["data"] if d["event"] == created[0]] == []
        stored = await stack.db.fetchval(
            "SELECT count(*) FROM webhook_events WHERE type = $1 "
            "AND position($2::bytea in raw_body) > 0",
            LOST_EVENT,
            session_id.encode(),
        )
        assert stored == 0
        subscription = await stack.stripe.v1.subscriptions.retrieve_async(subscription_id)
        assert subscription.status == "incomplete_expired"
        await record_history(
            stack.temporal, checkout_workflow_id(user_id), "checkout_failed_from_rereads"
        )

        # The expired subscription blocks nothing: the user pays again with a new run.
        retry = await stack.checkout(user_id)
        assert retry["checkout_session_id"] != session_id
        assert (await stack.pay(retry["checkout_session_id"])).status_code == 200
        await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
        assert len(stack.mail.to(address)) == 1


async def test_reads_refused_for_longer_than_the_retry_budget_then_completes(
    checkout_stack: OpenStack,
) -> None:
    # A re-read is tried twice in the worker; the outage outlasts that many times over.
    # The run's own backoff between re-reads starts at 0.5 s and is capped at 2 s (four
    # times the first), so each stuck attempt comes soon after the last.
    async with checkout_stack(reconcile_after=0.5, reread_attempts=2) as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        assert (await stack.pay(session_id, "pm_delayed_success")).status_code == 200
        await stack.wait_status(user_id, lambda body: body["payment_state"] == "confirming")

        reads = r"^/v1/(checkout/sessions|subscriptions|invoices)"
        await stack.sandbox.add_fault(path=reads, method="GET", status=503)
        # The bank settles while Stripe refuses every read: the success event arrives
        # and wakes the run, whose re-read keeps failing.
        settled = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/settle", json={}
        )
        assert settled.status_code == 200, settled.text
        stuck = await eventually(
            lambda: run_status(stack, user_id),
            lambda status: status.stuck_step == "reread_session" and status.stuck_attempts >= 2,
            seconds=60,
            interval=0.5,
        )
        assert stuck.payment_state == "confirming"
        assert stuck.stuck_since is not None
        assert stuck.stuck_error is not None and "503" in stuck.stuck_error

        # Then a refusal no retry fixes by itself (a 400, as after a bad deploy).
        await stack.sandbox.clear_faults()
        await stack.sandbox.add_fault(path=reads, method="GET", status=400)
        refused = await eventually(
            lambda: run_status(stack, user_id),
            lambda status: status.stuck_error is not None and "400" in status.stuck_error,
            seconds=60,
            interval=0.5,
        )
        assert refused.stuck_step == "reread_session"
        assert refused.stuck_attempts > stuck.stuck_attempts
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert (await stack.status(user_id))["payment_state"] == "confirming"

        # Stripe answers again: no user action, no replay, the checkout completes.
        await stack.sandbox.clear_faults()
        final = await stack.wait_status(
            user_id, lambda body: body["next_action"] == "set_password", seconds=60
        )
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        assert len(stack.mail.to(address)) == 1
        done = await run_status(stack, user_id)
        assert (done.stuck_step, done.stuck_attempts, done.stuck_error) == (None, 0, None)
        assert await sessions_created_for(stack, user_id) == 1
        await eventually(
            handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED, seconds=30
        )
        await record_history(
            stack.temporal, checkout_workflow_id(user_id), "checkout_reads_refused_then_paid"
        )


async def test_incomplete_subscription_refuses_a_new_checkout(checkout_stack: OpenStack) -> None:
    async with checkout_stack(reconcile_after=1.0) as stack:
        user_id, _ = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        assert (await stack.pay(session_id, "pm_delayed_fail")).status_code == 200
        failed = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/settle", json={}
        )
        assert failed.status_code == 200, failed.text
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        await eventually(
            handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED, seconds=30
        )
        assert (await stack.status(user_id))["next_action"] == "pay"

        # `subscription-<user>` has recorded the subscription awaiting its first
        # payment; its hosted invoice page can still take it for 23 h.
        async def billing_status() -> Any:
            return await stack.db.fetchval(
                "SELECT status FROM billing WHERE user_id = $1::uuid", user_id
            )

        await eventually(billing_status, lambda status: status == "incomplete", seconds=30)
        refused = await stack.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert refused.status_code == 409, refused.text
        assert "first payment" in refused.json()["error"]["message"]
        assert await sessions_created_for(stack, user_id) == 1
