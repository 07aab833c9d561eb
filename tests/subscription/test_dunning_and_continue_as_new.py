"""Issue 15, must-show 4 and 6, on the time-skipping server with the real workflow and
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
from workflows.contracts import (
    STRIPE_EVENT_SIGNAL,
    SUBSCRIPTION_WORKFLOW,
    StripeEventSignal,
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
            await asyncio.sleep(0.05)


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
