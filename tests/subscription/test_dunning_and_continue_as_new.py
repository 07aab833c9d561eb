"""Dunning and continue-as-new on the time-skipping server with the real workflow and
same-named fake activities: grace periods measured in days, continue-as-new."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.subscription.fakes import FakeBilling
from tests.support.polling import eventually
from workflows import errors
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal
from workflows.contracts.subscription import (
    SUBSCRIPTION_WORKFLOW,
    SubscriptionState,
    SubscriptionWorkflowInput,
)
from workflows.subscription import SubscriptionWorkflow


def _event(kind: str, object_id: str, event_id: str | None = None) -> StripeEventSignal:
    return StripeEventSignal(
        event_id=event_id or f"evt_{uuid.uuid4().hex}",
        type=kind,
        created=datetime(2026, 1, 1, tzinfo=UTC),
        object_id=object_id,
    )


async def _state(handle: WorkflowHandle[object, object]) -> SubscriptionState:
    state: SubscriptionState = await handle.query("status", result_type=SubscriptionState)
    return state


async def _until(
    handle: WorkflowHandle[object, object], accept: object, seconds: float = 15
) -> SubscriptionState:
    assert callable(accept)
    async with asyncio.timeout(seconds):
        while True:
            state = await _state(handle)
            if accept(state):
                return state
            await asyncio.sleep(0.05)  # the poll interval of a wait on a condition


@contextlib.asynccontextmanager
async def _start(
    env: WorkflowEnvironment, fake: FakeBilling
) -> AsyncIterator[tuple[Client, WorkflowHandle[object, object]]]:
    task_queue = f"sub-ts-{uuid.uuid4().hex[:8]}"
    user_id = str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[SubscriptionWorkflow],
        activities=fake.activities(),
    ):
        handle: WorkflowHandle[object, object] = await env.client.start_workflow(
            SUBSCRIPTION_WORKFLOW,
            SubscriptionWorkflowInput(user_id=user_id),
            id=f"subscription-{user_id}",
            task_queue=task_queue,
        )
        yield env.client, handle


@pytest.fixture
def fake() -> FakeBilling:
    return FakeBilling()


async def _active_pro(handle: WorkflowHandle[object, object], fake: FakeBilling) -> None:
    sub = fake.subscription.subscription_id
    await handle.signal(STRIPE_EVENT_SIGNAL, _event("customer.subscription.created", sub))
    state = await _until(handle, lambda s: s.tier == "pro")
    assert state.status == "active" and state.grace_until is None
    assert fake.records[-1].record.tier == "pro"


async def _fail_payment(handle: WorkflowHandle[object, object], fake: FakeBilling) -> None:
    fake.subscription.status = "past_due"
    await handle.signal(STRIPE_EVENT_SIGNAL, _event("invoice.payment_failed", "in_fake0000001"))
    state = await _until(handle, lambda s: s.status == "past_due")
    assert state.tier == "pro", "the tier holds during the grace period"
    assert state.grace_until is not None
    record = fake.records[-1].record
    assert (record.status, record.tier, record.grace_until) == (
        "past_due", "pro", state.grace_until,
    )  # fmt: skip
    assert [email.template for email in fake.emails] == ["payment_failed"]


async def test_unpaid_grace_period_drops_to_free(
    time_skipping_env: WorkflowEnvironment, fake: FakeBilling
) -> None:
    async with _start(time_skipping_env, fake) as (_, handle):
        await _active_pro(handle, fake)
        await _fail_payment(handle, fake)
        state = await _state(handle)
        assert state.grace_until is not None
        await time_skipping_env.sleep(timedelta(days=6))
        assert (await _state(handle)).tier == "pro"
        await time_skipping_env.sleep(timedelta(days=1, hours=1))
        state = await _until(handle, lambda s: s.tier == "free")
        assert state.status == "past_due" and state.grace_expired_notified
        assert fake.records[-1].record.tier == "free"
        assert [email.template for email in fake.emails] == [
            "payment_failed",
            "downgraded_after_grace",
        ]
        # A later payment restores the tier.
        fake.subscription.status = "active"
        await handle.signal(STRIPE_EVENT_SIGNAL, _event("invoice.paid", "in_fake0000001"))
        state = await _until(handle, lambda s: s.tier == "pro")
        assert state.grace_until is None


async def test_paid_on_day_three_stays_active(
    time_skipping_env: WorkflowEnvironment, fake: FakeBilling
) -> None:
    async with _start(time_skipping_env, fake) as (_, handle):
        await _active_pro(handle, fake)
        await _fail_payment(handle, fake)
        await time_skipping_env.sleep(timedelta(days=3))
        fake.subscription.status = "active"
        await handle.signal(STRIPE_EVENT_SIGNAL, _event("invoice.paid", "in_fake0000001"))
        state = await _until(handle, lambda s: s.status == "active")
        assert state.tier == "pro" and state.grace_until is None
        await time_skipping_env.sleep(timedelta(days=7))
        state = await _state(handle)
        assert state.tier == "pro" and state.status == "active"
        assert [email.template for email in fake.emails] == ["payment_failed"]
        assert fake.records[-1].record.tier == "pro"


async def test_continue_as_new_keeps_state_and_event_guard(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeBilling(continue_as_new_after=3)
    async with _start(time_skipping_env, fake) as (client, first):
        sub = fake.subscription.subscription_id
        first_run = (await first.describe()).run_id
        old = _event("customer.subscription.created", sub, "evt_old_one")
        await first.signal(STRIPE_EVENT_SIGNAL, old)
        for _ in range(3):
            await first.signal(STRIPE_EVENT_SIGNAL, _event("customer.subscription.updated", sub))
        latest = client.get_workflow_handle(first.id)

        async def run_id() -> str:
            return (await latest.describe()).run_id

        await eventually(run_id, lambda current: current != first_run, seconds=15)
        state = await _until(latest, lambda s: len(s.applied_event_ids) == 4)
        assert state.tier == "pro" and state.stripe_subscription_id == sub
        assert "evt_old_one" in state.applied_event_ids
        reads = fake.subscription_reads
        records = len(fake.records)
        # A replayed old event is still recognised in the new run.
        await latest.signal(STRIPE_EVENT_SIGNAL, old)
        marker = _event("customer.subscription.updated", sub, "evt_marker")
        await latest.signal(STRIPE_EVENT_SIGNAL, marker)
        state = await _until(latest, lambda s: "evt_marker" in s.applied_event_ids)
        assert fake.subscription_reads == reads + 1  # the marker only
        assert len(fake.records) == records + 1
        assert state.applied_event_ids.count("evt_old_one") == 1


async def test_a_refused_reread_keeps_the_event_pending_until_stripe_answers(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A Stripe error never drops an event: a re-read refused for hours (a 403 after a
    key rotation here) leaves the event pending in the state, shown with its error,
    re-read with a doubling wait (30 s, 1 min, … capped at 15 min), and applied once
    Stripe answers."""
    fake = FakeBilling()
    async with _start(time_skipping_env, fake) as (client, first):
        sub = fake.subscription.subscription_id
        fake.refuse_reads = errors.STRIPE_AUTHENTICATION
        stuck = _event("customer.subscription.updated", sub, "evt_refused_for_hours")
        await first.signal(STRIPE_EVENT_SIGNAL, stuck)
        state = await _until(first, lambda s: len(s.pending_events) == 1)
        pending = state.pending_events[0]
        assert pending.event.event_id == "evt_refused_for_hours" and pending.attempts == 1
        assert errors.STRIPE_AUTHENTICATION in pending.last_error
        assert state.tier == "free" and not state.applied_event_ids
        # Two hours of refusals: 30 s + 1 + 2 + 4 + 8 min, then every 15 min (>= 11 tries).
        await time_skipping_env.sleep(timedelta(hours=2))
        latest = client.get_workflow_handle(first.id)
        state = await _until(latest, lambda s: s.pending_events[0].attempts >= 11)
        assert state.pending_events[0].attempts <= 13, "the wait is capped, not hammering"
        fake.refuse_reads = None
        await time_skipping_env.sleep(timedelta(minutes=16))
        state = await _until(latest, lambda s: not s.pending_events, seconds=30)
        assert state.tier == "pro" and "evt_refused_for_hours" in state.applied_event_ids
        assert fake.records[-1].record.tier == "pro"


async def test_an_object_gone_at_stripe_is_ignored_with_a_reason(
    time_skipping_env: WorkflowEnvironment, fake: FakeBilling
) -> None:
    async with _start(time_skipping_env, fake) as (_, handle):
        fake.refuse_reads = errors.STRIPE_OBJECT_MISSING
        gone = _event("customer.subscription.updated", "sub_gone0000001", "evt_gone")
        await handle.signal(STRIPE_EVENT_SIGNAL, gone)
        state = await _until(handle, lambda s: "evt_gone" in s.applied_event_ids)
        assert not state.pending_events and fake.subscription_reads == 1
        assert state.stripe_subscription_id is None and not fake.records


async def test_a_pending_event_is_carried_across_continue_as_new(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeBilling(continue_as_new_after=2)
    async with _start(time_skipping_env, fake) as (client, first):
        first_run = (await first.describe()).run_id
        sub = fake.subscription.subscription_id
        fake.refuse_invoice_reads = errors.STRIPE_INVALID_REQUEST
        await first.signal(
            STRIPE_EVENT_SIGNAL, _event("invoice.paid", "in_stuck000001", "evt_stuck")
        )
        await _until(first, lambda s: len(s.pending_events) == 1)
        for _ in range(2):
            await first.signal(STRIPE_EVENT_SIGNAL, _event("customer.subscription.updated", sub))
        latest = client.get_workflow_handle(first.id)

        async def run_id() -> str:
            return (await latest.describe()).run_id

        await eventually(run_id, lambda current: current != first_run, seconds=15)
        carried = await _until(latest, lambda s: len(s.applied_event_ids) == 2)
        assert [p.event.event_id for p in carried.pending_events] == ["evt_stuck"]
        fake.refuse_invoice_reads = None
        await time_skipping_env.sleep(timedelta(minutes=20))
        state = await _until(latest, lambda s: "evt_stuck" in s.applied_event_ids)
        assert not state.pending_events
        assert [invoice.invoice.invoice_id for invoice in fake.invoices] == ["in_stuck000001"]


async def test_a_payment_waiting_for_the_customer_is_rechecked_without_events(
    time_skipping_env: WorkflowEnvironment, fake: FakeBilling
) -> None:
    """Stripe says a renewal needs the customer; its `invoice.paid` never arrives (a
    broken webhook setup): the workflow re-reads the invoice on its own timer (30 min)."""
    async with _start(time_skipping_env, fake) as (_, handle):
        await _active_pro(handle, fake)
        fake.subscription.status = "past_due"
        await handle.signal(
            STRIPE_EVENT_SIGNAL, _event("invoice.payment_action_required", "in_renewal00001")
        )
        state = await _until(handle, lambda s: s.pending_payment is not None)
        assert state.pending_payment is not None
        assert (state.pending_payment.kind, state.pending_payment.invoice_id) == (
            "renewal", "in_renewal00001",
        )  # fmt: skip
        waiting = fake.records[-1].record
        assert waiting.payment_state == "requires_action"
        assert state.tier == "pro" and state.status == "past_due"
        fake.subscription.status = "active"  # the customer authenticated; no event comes
        await time_skipping_env.sleep(timedelta(minutes=31))
        state = await _until(handle, lambda s: s.pending_payment is None)
        assert (state.status, state.tier, state.grace_until) == ("active", "pro", None)
        assert fake.records[-1].record.payment_state == "settled"
