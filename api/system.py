"""The state of the whole system as one API process sees it, for operators.

`/readyz` answers only for what this process needs to serve (Postgres), so a worker
outage never takes the API out of a load balancer. Everything else — Temporal, the
worker pollers of each task queue, the webhook inbox's lag and failures, checkouts
stuck past a threshold — is checked here: on demand for `GET /v1/admin/system`, and
every `SYSTEM_CHECK_INTERVAL_SECONDS` by :class:`SystemMonitor` for the metrics an
operator alerts on (`onramp_worker_pollers{queue,type}`,
`onramp_webhook_inbox_lag_seconds`).

A poller counts as live when it was seen within `READINESS_POLLER_MAX_AGE_SECONDS`
(~70 s): Temporal keeps listing a dead worker's poller for minutes, and a live idle
worker's last poll is up to ~60 s old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from api import metrics, reconcile_metrics
from api.temporal_gateway import TemporalGateway, TemporalUnavailable
from api.webhooks import metrics as webhook_metrics
from onramp.logging import log_event
from onramp.repositories import checkout_runs, event_endpoints
from onramp.repositories import webhook_events as webhook_inbox
from onramp.settings import ApiSettings
from workflows.contracts.event_delivery import (
    EVENT_DISPATCH,
    DispatchInput,
    event_dispatch_workflow_id,
)

logger = logging.getLogger(__name__)

ComponentName = Literal[
    "postgres", "temporal", "worker", "provisioning_hook", "webhook_inbox", "workflows"
]
_QUEUE_TYPES = (
    ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
    ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
)


class Component(BaseModel):
    ok: bool
    state: str
    reason: str


class SystemStatus(BaseModel):
    status: Literal["ok", "degraded"]
    checked_at: datetime
    components: dict[ComponentName, Component]
    worker_pollers: dict[str, dict[str, int]]
    webhook_inbox_lag_seconds: float | None


async def check_postgres(pool: asyncpg.Pool, seconds: float) -> Component:
    try:
        async with asyncio.timeout(seconds):
            await pool.fetchval("SELECT 1")
    except Exception as error:  # whatever the failure, Postgres is not usable
        return Component(
            ok=False,
            state="unreachable",
            reason=f"Postgres does not answer ({type(error).__name__})",
        )
    return Component(ok=True, state="up", reason="Postgres answers")


async def live_pollers(
    gateway: TemporalGateway, task_queue: str, max_age: timedelta
) -> dict[str, int]:
    """Pollers seen within `max_age` on the queue, by task type (raises when Temporal is
    unreachable)."""
    client = await gateway.client()
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    for label, queue_type in _QUEUE_TYPES:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=gateway.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=queue_type,
            ),
            timeout=gateway.rpc_timeout,
        )
        counts[label] = sum(
            1
            for poller in response.pollers
            if poller.HasField("last_access_time")
            and now - poller.last_access_time.ToDatetime(tzinfo=UTC) <= max_age
        )
    return counts


async def check_temporal_and_worker(
    gateway: TemporalGateway, task_queue: str, max_age: timedelta
) -> tuple[Component, Component, dict[str, int] | None]:
    try:
        async with asyncio.timeout(gateway.rpc_timeout.total_seconds() * 2 + 1):
            pollers = await live_pollers(gateway, task_queue, max_age)
    except (TemporalUnavailable, RPCError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        return (
            Component(ok=False, state="unreachable", reason=f"Temporal does not answer ({reason})"),
            Component(ok=False, state="unknown", reason="unknown while Temporal is unreachable"),
            None,
        )
    temporal = Component(ok=True, state="up", reason="Temporal answers")
    missing = [label for label, count in pollers.items() if count == 0]
    seconds = int(max_age.total_seconds())
    if missing:
        worker = Component(
            ok=False,
            state="no_pollers",
            reason=(
                f"no worker polling task queue '{task_queue}' for {' and '.join(missing)} "
                f"tasks in the last {seconds} s"
            ),
        )
    else:
        worker = Component(
            ok=True,
            state="polling",
            reason=f"{pollers['workflow']} workflow and {pollers['activity']} activity "
            f"pollers on task queue '{task_queue}' seen in the last {seconds} s",
        )
    return temporal, worker, pollers


async def check_provisioning_hook(
    gateway: TemporalGateway, task_queue: str, max_age: timedelta
) -> tuple[Component, int | None]:
    """The platform's worker on `PROVISIONING_TASK_QUEUE`: it runs activities only, so
    only activity pollers count. Without one, every paid checkout waits at provisioning."""
    try:
        async with asyncio.timeout(gateway.rpc_timeout.total_seconds() * 2 + 1):
            pollers = await live_pollers(gateway, task_queue, max_age)
    except (TemporalUnavailable, RPCError, TimeoutError):
        unknown = Component(ok=False, state="unknown", reason="Temporal does not answer")
        return unknown, None
    count = pollers["activity"]
    seconds = int(max_age.total_seconds())
    if count == 0:
        return Component(
            ok=False,
            state="no_pollers",
            reason=f"no platform worker polling task queue '{task_queue}' for activity tasks "
            f"in the last {seconds} s: paid checkouts wait at provisioning",
        ), 0
    return Component(
        ok=True,
        state="polling",
        reason=f"{count} activity pollers on task queue '{task_queue}' "
        f"seen in the last {seconds} s",
    ), count


async def check_inbox(
    pool: asyncpg.Pool, lag_alert_seconds: float
) -> tuple[Component, float | None]:
    try:
        counts = await webhook_inbox.inbox_counts(pool)
    except Exception as error:  # Postgres away: the postgres component says why
        return (
            Component(ok=False, state="unknown", reason=f"cannot read ({type(error).__name__})"),
            None,
        )
    lag = counts.oldest_pending_seconds
    if counts.failed:
        return (
            Component(
                ok=False,
                state="failed_events",
                reason=f"{counts.failed} events failed permanently: "
                "`onramp webhooks replay --failed` after fixing the cause",
            ),
            lag,
        )
    if lag >= lag_alert_seconds:
        return (
            Component(
                ok=False,
                state="lagging",
                reason=f"{counts.pending} events waiting, the oldest for {lag:.0f} s "
                "(Temporal down or no dispatcher running?)",
            ),
            lag,
        )
    return (
        Component(
            ok=True,
            state="flowing",
            reason=f"{counts.pending} events waiting, the oldest for {lag:.1f} s",
        ),
        lag,
    )


async def check_workflows(pool: asyncpg.Pool, stuck_after_seconds: float) -> Component:
    """Checkouts paid but not provisioned past the threshold, or waiting for an operator."""
    try:
        stuck = await checkout_runs.stuck_counts(pool, stuck_after_seconds)
    except Exception as error:  # Postgres away: the postgres component says why
        return Component(ok=False, state="unknown", reason=f"cannot read ({type(error).__name__})")
    failed, slow = stuck.failed, stuck.slow
    if failed or slow:
        return Component(
            ok=False,
            state="stuck",
            reason=f"{failed} checkouts wait for an operator's retry-provisioning, {slow} paid "
            f"more than {int(stuck_after_seconds)} s ago are not provisioned",
        )
    return Component(ok=True, state="flowing", reason="no checkout stuck")


async def system_status(
    settings: ApiSettings, pool: asyncpg.Pool, gateway: TemporalGateway
) -> SystemStatus:
    """Every component, checked concurrently, each within its own timeout."""
    queue = settings.temporal_task_queue
    postgres, (temporal, worker, pollers), (inbox, lag), workflows = await asyncio.gather(
        check_postgres(pool, settings.temporal_rpc_timeout_seconds),
        check_temporal_and_worker(
            gateway, queue, timedelta(seconds=settings.readiness_poller_max_age_seconds)
        ),
        check_inbox(pool, settings.system_inbox_lag_alert_seconds),
        check_workflows(pool, settings.system_stuck_after_seconds),
    )
    components: dict[ComponentName, Component] = {
        "postgres": postgres,
        "temporal": temporal,
        "worker": worker,
        "webhook_inbox": inbox,
        "workflows": workflows,
    }
    worker_pollers = {queue: pollers} if pollers is not None else {}
    hook_queue = settings.provisioning_task_queue
    if hook_queue is not None:
        max_age = timedelta(seconds=settings.readiness_poller_max_age_seconds)
        components["provisioning_hook"], hook_pollers = await check_provisioning_hook(
            gateway, hook_queue, max_age
        )
        if hook_pollers is not None:
            worker_pollers[hook_queue] = {"activity": hook_pollers}
    return SystemStatus(
        status="ok" if all(component.ok for component in components.values()) else "degraded",
        checked_at=datetime.now(UTC),
        components=components,
        worker_pollers=worker_pollers,
        webhook_inbox_lag_seconds=lag,
    )


class SystemMonitor:
    """Refreshes the alerting gauges of this API process on an interval."""

    def __init__(self, settings: ApiSettings, pool: asyncpg.Pool, gateway: TemporalGateway) -> None:
        self.settings = settings
        self.pool = pool
        self.gateway = gateway
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="system-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        queue = self.settings.temporal_task_queue
        max_age = timedelta(seconds=self.settings.readiness_poller_max_age_seconds)
        _, _, pollers = await check_temporal_and_worker(self.gateway, queue, max_age)
        for label, _ in _QUEUE_TYPES:
            # Temporal unreachable: no worker can be seen polling, which is what alerts.
            count = pollers.get(label, 0) if pollers is not None else 0
            metrics.WORKER_POLLERS.labels(queue, label).set(count)
        hook_queue = self.settings.provisioning_task_queue
        if hook_queue is not None:
            _, hook_pollers = await check_provisioning_hook(self.gateway, hook_queue, max_age)
            metrics.WORKER_POLLERS.labels(hook_queue, "activity").set(hook_pollers or 0)
        try:
            async with asyncio.timeout(self.settings.temporal_rpc_timeout_seconds):
                lag = await webhook_inbox.inbox_lag_seconds(self.pool)
        except Exception as error:  # Postgres away: keep the last value, say so in the log
            log_event(
                logger,
                "SYSTEM_CHECK_FAILED",
                logging.WARNING,
                check="webhook_inbox",
                error=type(error).__name__,
            )
        else:
            webhook_metrics.INBOX_LAG.set(lag)
        await self.refresh_reconcile_metrics()
        await self.keep_event_dispatchers()

    async def refresh_reconcile_metrics(self) -> None:
        try:
            async with asyncio.timeout(self.settings.temporal_rpc_timeout_seconds):
                await reconcile_metrics.refresh(self.pool)
        except Exception as error:  # Postgres away: keep the last values, say so in the log
            log_event(
                logger, "SYSTEM_CHECK_FAILED", logging.WARNING, check="reconcile",
                error=type(error).__name__,
            )  # fmt: skip

    async def keep_event_dispatchers(self) -> None:
        """Start the dispatcher of every event endpoint that has none running.

        A dispatcher ends only when its endpoint is deleted, but an operator may terminate
        it, or its start at creation may have been lost: without this, that endpoint's
        events would wait until someone touched it. Starting an open run again is a no-op
        that adds nothing to its history; the new run resumes at the cursor and with the
        open lanes saved in Postgres, so nothing is skipped, and what it reads again is
        not delivered twice.
        """
        try:
            async with asyncio.timeout(self.settings.temporal_rpc_timeout_seconds):
                endpoints = await event_endpoints.list_endpoints(self.pool)
            for endpoint in endpoints:
                await self.gateway.ensure_started(
                    EVENT_DISPATCH,
                    DispatchInput(endpoint_id=endpoint.endpoint_id),
                    workflow_id=event_dispatch_workflow_id(endpoint.endpoint_id),
                    task_queue=self.settings.temporal_task_queue,
                )
        except Exception as error:  # the next refresh tries again; say why in the log
            log_event(
                logger,
                "SYSTEM_CHECK_FAILED",
                logging.WARNING,
                check="event_dispatchers",
                error=type(error).__name__,
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # a monitor that dies silently would hide outages
                log_event(
                    logger,
                    "SYSTEM_CHECK_FAILED",
                    logging.WARNING,
                    error=f"{type(error).__name__}: {error}"[:300],
                )
            await asyncio.sleep(self.settings.system_check_interval_seconds)
