"""The worker heartbeats for regular activities that have a heartbeat timeout.

Against the real dev server: an activity that awaits three times longer than its
heartbeat timeout, and heartbeats nothing itself, completes on its first attempt when
the worker has the interceptor; without it the server times the attempt out.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType
from temporalio.worker import Interceptor, Worker

from worker.heartbeats import HeartbeatInterceptor

pytestmark = pytest.mark.slow


HEARTBEAT_TIMEOUT = timedelta(seconds=2)


@activity.defn
async def slow_call() -> int:
    """Stands for a Stripe write or the hand-over: awaits, never heartbeats itself."""
    # A sleep by design: the call outlasts the heartbeat timeout without heartbeating.
    await asyncio.sleep(HEARTBEAT_TIMEOUT.total_seconds() * 3)
    return activity.info().attempt


@activity.defn
async def local_call() -> bool:
    return activity.info().is_local


@workflow.defn(sandboxed=False)
class SlowCallWorkflow:
    @workflow.run
    async def run(self) -> tuple[int, bool]:
        attempt = await workflow.execute_activity(
            slow_call,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        local = await workflow.execute_local_activity(
            local_call, start_to_close_timeout=timedelta(seconds=5)
        )
        return attempt, local


async def _run(client: Client, interceptors: list[Interceptor]) -> tuple[int, bool]:
    task_queue = f"heartbeats-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[SlowCallWorkflow],
        activities=[slow_call, local_call],
        interceptors=interceptors,
    ):
        result: tuple[int, bool] = await client.execute_workflow(
            SlowCallWorkflow.run, id=task_queue, task_queue=task_queue
        )
        return result


async def test_a_long_call_keeps_its_attempt_alive(temporal_client: Client) -> None:
    attempt, local = await _run(temporal_client, [HeartbeatInterceptor()])
    assert attempt == 1
    assert local is True  # a local activity runs through the interceptor untouched


async def test_without_heartbeats_the_server_times_the_attempt_out(
    temporal_client: Client,
) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await _run(temporal_client, [])
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, TimeoutError)
    assert cause.cause.type == TimeoutType.HEARTBEAT
