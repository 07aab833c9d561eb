"""The one Temporal call of a dispatched event: a signal, or signal-with-start.

Its errors come out as three kinds, for the inbox to record: `NotRunning` (a signal to
a workflow with no open run), `Transient` (Temporal away or slow: the row stays
`pending` and is retried) and `Permanent`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.temporal_gateway import TemporalGateway, TemporalUnavailable
from api.webhooks import metrics
from api.webhooks.routing import SignalTarget
from workflows import search_attributes
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal

# Temporal did not answer (or not in time): the event stays `pending` and is retried.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
    }
)


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


class NotRunning(Exception):
    pass


async def send_event(
    gateway: TemporalGateway,
    target: SignalTarget,
    signal: StripeEventSignal,
    *,
    task_queue: str,
    budget: timedelta,
) -> None:
    """One Temporal call within `budget`; errors become NotRunning, Transient or Permanent."""
    method = "signal" if target.start is None else "signal_with_start"
    started = time.perf_counter()
    result = "ok"
    try:
        async with asyncio.timeout(budget.total_seconds()):
            client = await gateway.client()
            await _call(client, target, signal, task_queue, gateway.rpc_timeout)
    except TemporalUnavailable as error:
        result = "unavailable"
        raise Transient(str(error)) from error
    except TimeoutError as error:
        result = "unavailable"
        raise Transient(f"Temporal did not answer within {budget.total_seconds():.1f} s") from error
    except RPCError as error:
        description = f"{error.status.name}: {error.message}"
        if error.status == RPCStatusCode.NOT_FOUND and target.start is None:
            result = "not_found"
            raise NotRunning(description) from error
        if error.status in _TRANSIENT:
            result = "unavailable"
            raise Transient(description) from error
        result = "error"
        raise Permanent(description) from error
    finally:
        metrics.DISPATCH_SECONDS.labels(method, result).observe(time.perf_counter() - started)


async def _call(
    client: Client,
    target: SignalTarget,
    signal: StripeEventSignal,
    task_queue: str,
    rpc_timeout: timedelta,
) -> None:
    timeout = rpc_timeout
    if target.start is None:
        handle = client.get_workflow_handle(target.workflow_id)
        await handle.signal(STRIPE_EVENT_SIGNAL, signal, rpc_timeout=timeout)
        return
    await client.start_workflow(
        target.start.workflow,
        target.start.input,
        id=target.workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=STRIPE_EVENT_SIGNAL,
        start_signal_args=[signal],
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(search_attributes.USER_ID, target.user_id)]
        ),
        rpc_timeout=timeout,
    )
