"""Heartbeats for regular activities, so a dead worker's activity is retried in seconds.

Temporal learns that the worker running an activity died only from a timeout. Without
heartbeats that is the start-to-close timeout: a Stripe write or the checkout's
hand-over killed mid-call waited one to two minutes before its retry (the chaos run's
slowest journeys). An activity scheduled with a `heartbeat_timeout`
(policies.STRIPE_WRITE, checkout's HAND_OVER) gets a heartbeat from this interceptor
every third of that timeout while it runs, whatever it is awaiting; when the worker
dies the heartbeats stop, and the server retries the activity once the heartbeat
timeout passes. The retry repeats
the call under the same Stripe idempotency key or update id, so it changes nothing that
the first attempt did.

An activity that finishes within the first interval never heartbeats (no extra request).
Local activities have no heartbeat: they live and die with their workflow task.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

HEARTBEATS_PER_TIMEOUT = 3


class HeartbeatInterceptor(Interceptor):
    """Worker interceptor: heartbeats for every regular activity with a heartbeat
    timeout (see the module docstring)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next)


class _Heartbeating(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        timeout = info.heartbeat_timeout
        if info.is_local or not timeout:
            return await self.next.execute_activity(input)
        beating = asyncio.create_task(_beat(timeout.total_seconds() / HEARTBEATS_PER_TIMEOUT))
        try:
            return await self.next.execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _beat(interval: float) -> None:
    # The task copied the activity's context when it was created, so `heartbeat`
    # reaches this activity.
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat()
