"""Declined card and expired session."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.checkout.conftest import OpenStack, state_of
from tests.support.polling import eventually
from workflows.contracts.checkout import CheckoutStatus, checkout_workflow_id
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal

pytestmark = pytest.mark.slow


UNPAID = ("unpaid", "not_started", "not_sent", "pay")


async def test_declined_card_keeps_the_session_open(checkout_stack: OpenStack) -> None:
    async with checkout_stack(reconcile_after=0.5) as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        declined = await stack.pay(session_id, "pm_card_chargeDeclined")
        assert declined.status_code == 402, declined.text
        session = await stack.stripe.v1.checkout.sessions.retrieve_async(session_id)
        assert session.status == "open"
        # Several re-reads later (reconcile every 0.5 s) it still says: pay.
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        await eventually(
            lambda: stack.sandbox.requests(),
            lambda log: sum(session_id in str(entry) for entry in log) >= 4,
            seconds=15,
        )
        assert state_of(await stack.status(user_id)) == UNPAID
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        assert (await stack.pay(session_id, "pm_card_visa")).status_code == 200
        final = await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
        assert final["checkout_session_id"] == session_id
        assert len(stack.mail.to(address)) == 1


async def test_expired_session_then_a_new_run_ignores_the_late_event(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, _ = await stack.signup()
        first = await stack.checkout(user_id)
        first_status = await stack.status(user_id)
        assert first_status["attempt"] == 1
        expired = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{first['checkout_session_id']}/expire"
        )
        assert expired.status_code == 200, expired.text
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        await eventually(
            handle.describe,
            lambda d: d.status == WorkflowExecutionStatus.COMPLETED,
            seconds=20,
        )
        assert state_of(await stack.status(user_id)) == UNPAID

        second = await stack.checkout(user_id)
        assert second["checkout_session_id"] != first["checkout_session_id"]
        status = await stack.status(user_id)
        assert status["attempt"] == 2
        assert status["checkout_session_id"] == second["checkout_session_id"]
        runs = await stack.count(
            "SELECT count(DISTINCT run_id) FROM checkout_runs WHERE user_id = $1", user_id
        )
        assert runs == 2

        # A late `expired` event about the first session reaches the new run: no effect.
        current = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
        await current.signal(
            STRIPE_EVENT_SIGNAL,
            StripeEventSignal(
                event_id="evt_late0expired0first",
                type="checkout.session.expired",
                created=datetime.now(UTC),
                object_id=first["checkout_session_id"],
                object_type="checkout.session",
            ),
        )
        view = await current.query("status", result_type=CheckoutStatus)
        assert "evt_late0expired0first" in view.applied_event_ids
        assert view.session_id == second["checkout_session_id"]
        assert (await current.describe()).status == WorkflowExecutionStatus.RUNNING
        assert state_of(await stack.status(user_id)) == UNPAID

        # Another plan while open: the open session is expired and replaced.
        third = await stack.checkout(user_id, tier="enterprise", cycle="yearly")
        assert third["checkout_session_id"] != second["checkout_session_id"]
        old = await stack.stripe.v1.checkout.sessions.retrieve_async(second["checkout_session_id"])
        assert old.status == "expired"
        status = await stack.status(user_id)
        assert status["tier"] == "enterprise" and status["attempt"] == 2
        assert (await stack.pay(third["checkout_session_id"])).status_code == 200
        await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")


async def test_delayed_payment_confirms_then_settles_or_fails(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        assert (await stack.pay(session_id, "pm_delayed_success")).status_code == 200
        await stack.wait_status(user_id, lambda body: body["payment_state"] == "confirming")
        assert state_of(await stack.status(user_id)) == (
            "confirming", "not_started", "not_sent", "wait_provisioning",
        )  # fmt: skip
        settled = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/settle", json={}
        )
        assert settled.status_code == 200, settled.text
        await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
        assert len(stack.mail.to(address)) == 1

        other, _ = await stack.signup()
        failing = await stack.checkout(other)
        assert (
            await stack.pay(failing["checkout_session_id"], "pm_delayed_fail")
        ).status_code == 200
        await stack.wait_status(other, lambda body: body["payment_state"] == "confirming")
        failed = await stack.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{failing['checkout_session_id']}/settle", json={}
        )
        assert failed.status_code == 200, failed.text
        handle = stack.temporal.get_workflow_handle(checkout_workflow_id(other))
        await eventually(
            handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED, seconds=20
        )
        assert state_of(await stack.status(other)) == UNPAID
