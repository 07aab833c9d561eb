"""Liveness and readiness.

Readiness means this API can do its job: Postgres answers, Temporal answers, and a
worker is polling the task queue (otherwise workflows would be started and never run,
the "poller was not deployed" failure). A poller counts when it was seen within
`READINESS_POLLER_MAX_AGE_SECONDS` (~70 s): Temporal keeps listing a dead worker's
poller for minutes, and a live idle worker's last poll is up to ~60 s old.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from api.deps import Pool, Settings, Temporal
from api.errors import ErrorResponse, error_response
from api.temporal_gateway import TemporalGateway, TemporalUnavailable

router = APIRouter(tags=["operations"])


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Postgres, Temporal and a polling worker",
    response_model=Readiness,
    responses={503: {"model": ErrorResponse, "description": "Something is missing"}},
)
async def readyz(settings: Settings, pool: Pool, temporal: Temporal) -> JSONResponse:
    timeout = settings.temporal_rpc_timeout_seconds
    postgres = await _check_postgres(pool, timeout)
    temporal_check, worker = await _check_temporal_and_worker(
        temporal,
        settings.temporal_task_queue,
        timedelta(seconds=settings.readiness_poller_max_age_seconds),
    )
    checks = {"postgres": postgres, "temporal": temporal_check, "worker": worker}
    body = Readiness(
        status="ready" if all(check.ok for check in checks.values()) else "not_ready",
        checks=checks,
    ).model_dump()
    if body["status"] == "ready":
        return JSONResponse(body)
    missing = "; ".join(f"{name}: {check.detail}" for name, check in checks.items() if not check.ok)
    return error_response(503, "not_ready", f"Not ready: {missing}", extra=body)


async def _check_postgres(pool: Pool, seconds: float) -> Check:
    try:
        async with asyncio.timeout(seconds):
            await pool.fetchval("SELECT 1")
    except Exception as error:  # whatever the failure, Postgres is not usable: not ready
        return Check(ok=False, detail=f"Postgres does not answer ({type(error).__name__})")
    return Check(ok=True, detail="Postgres answers")


async def _check_temporal_and_worker(
    gateway: TemporalGateway, task_queue: str, max_age: timedelta
) -> tuple[Check, Check]:
    unknown = Check(ok=False, detail="unknown while Temporal is unreachable")
    try:
        client = await gateway.client()
        newest: dict[str, datetime | None] = {}
        for label, queue_type in (
            ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        ):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=gateway.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=queue_type,
                ),
                timeout=gateway.rpc_timeout,
            )
            seen = [
                poller.last_access_time.ToDatetime(tzinfo=UTC)
                for poller in response.pollers
                if poller.HasField("last_access_time")
            ]
            newest[label] = max(seen) if seen else None
    except (TemporalUnavailable, RPCError, TimeoutError) as error:
        return Check(ok=False, detail=f"Temporal does not answer ({error})"), unknown
    temporal = Check(ok=True, detail="Temporal answers")
    now = datetime.now(UTC)
    stale = [label for label, seen in newest.items() if seen is None or now - seen > max_age]
    if stale:
        return temporal, Check(
            ok=False,
            detail=(
                f"no worker polling task queue '{task_queue}' for {' and '.join(stale)} "
                f"tasks in the last {int(max_age.total_seconds())} s"
            ),
        )
    return temporal, Check(ok=True, detail=f"a worker is polling task queue '{task_queue}'")
