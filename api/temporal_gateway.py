"""The API's lazy, time-bounded access to Temporal.

The API must start, and answer `/readyz` with 503, while Temporal is down: it connects
on first use, remembers a working client, and bounds every call with a timeout.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy

from onramp.temporal import connect_temporal
from workflows import search_attributes

ResultT = TypeVar("ResultT")


class TemporalUnavailable(Exception):
    """Temporal could not be reached in time; the caller answers 503."""


class TemporalGateway:
    """Hands out one shared Temporal client, connecting lazily."""

    def __init__(self, address: str, namespace: str, rpc_timeout: timedelta) -> None:
        self.address = address
        self.namespace = namespace
        self.rpc_timeout = rpc_timeout
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect_temporal(self.address, self.namespace, fail_fast=True),
                        timeout=self.rpc_timeout.total_seconds(),
                    )
                except (TimeoutError, RuntimeError, OSError) as error:
                    raise TemporalUnavailable(
                        f"cannot reach Temporal at {self.address}: {error}"
                    ) from error
            return self._client

    async def update_with_start(
        self,
        *,
        workflow: str,
        start_input: BaseModel,
        workflow_id: str,
        user_id: str,
        task_queue: str,
        update: str,
        argument: BaseModel,
        update_id: str,
        result_type: type[ResultT],
        wait: timedelta,
    ) -> ResultT:
        """Run one update on a per-user entity workflow, starting it if no run is open.

        The update is sent with the start (USE_EXISTING), accepted within the RPC
        timeout, and its result awaited for at most `wait`. Callers map the errors:
        `WorkflowUpdateFailedError` (the update refused or failed),
        `WorkflowUpdateRPCTimeoutOrCancelledError` (still running), `RPCError` and
        `TemporalUnavailable` (Temporal down).
        """
        client = await self.client()
        start: WithStartWorkflowOperation[object, object] = WithStartWorkflowOperation(
            workflow,
            start_input,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes.user_id_attributes(user_id),
        )
        handle = await client.start_update_with_start_workflow(
            update,
            argument,
            id=update_id,
            start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=result_type,
            rpc_timeout=self.rpc_timeout,
        )
        result: ResultT = await handle.result(rpc_timeout=wait)
        return result
