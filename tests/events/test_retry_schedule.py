"""The lane's retry schedule over three days, on the time-skipping server."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from worker.build import workflow_runner
from workflows.contracts.event_delivery import (
    ENQUEUE_SIGNAL,
    EVENT_DELIVERY_WORKFLOW,
    DeliverInput,
    DeliverResult,
    DeliveryPolicy,
    EnqueueEvents,
    EventRef,
    LaneInput,
)
from workflows.event_delivery import EventDeliveryWorkflow


async def test_an_event_that_never_gets_through_is_retried_for_three_days_then_given_up(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    attempts: list[DeliverInput] = []

    @activity.defn(name="deliver_event")
    async def deliver_event(request: DeliverInput) -> DeliverResult:
        attempts.append(request)
        return DeliverResult(outcome="failed", response_code=500, error="HTTP 500")

    policy = DeliveryPolicy()
    queue = f"events-{uuid.uuid4().hex[:10]}"
    endpoint = f"ep_{uuid.uuid4().hex}"
    user = str(uuid.uuid4())
    events = [EventRef(event_id=f"evt_{n}", sequence=n, user_id=user) for n in (1, 2)]
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[EventDeliveryWorkflow],
        activities=[deliver_event],
        workflow_runner=workflow_runner(),
    ):
        handle: WorkflowHandle[
            EventDeliveryWorkflow, None
        ] = await time_skipping_env.client.start_workflow(
            EVENT_DELIVERY_WORKFLOW,
            LaneInput(endpoint_id=endpoint, user_id=user, policy=policy),
            id=f"event-delivery-{endpoint}-{user}",
            task_queue=queue,
            start_signal=ENQUEUE_SIGNAL,
            start_signal_args=[EnqueueEvents(events=events)],
        )
        await handle.result()

    first = [attempt for attempt in attempts if attempt.event_id == "evt_1"]
    second = [attempt for attempt in attempts if attempt.event_id == "evt_2"]
    # One event at a time: the second is tried only after the first was given up.
    assert attempts.index(second[0]) == len(first)
    waits = [attempt.retry_in_seconds for attempt in first]
    assert waits[-1] is None and all(wait is not None for wait in waits[:-1])
    assert waits[:4] == [5.0, 10.0, 20.0, 40.0]
    assert max(wait for wait in waits if wait is not None) == policy.max_backoff_seconds
    total = sum(wait for wait in waits if wait is not None)
    assert 2.5 * 24 * 3600 < total <= policy.give_up_after_seconds
    assert [attempt.attempt for attempt in first] == list(range(1, len(first) + 1))
    # Failing for over an hour marks the endpoint failing (the activity does it).
    assert not first[0].mark_failing and first[-1].mark_failing
