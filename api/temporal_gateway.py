"""The API's one way to Temporal: lazy, and every call bounded by one deadline.

The API must start, and answer, while Temporal is down: it connects on first use and
remembers a working client. Each call (start, signal, update, update-with-start,
query, describe, a workflow's result) runs within the caller's `Deadline` as a whole —
connecting, sending, and every poll for the answer — and its errors become one error
here instead of in each route:

- `TemporalUnavailable` (503, `temporal_unavailable`, Retry-After): Temporal could not
  be reached or refused the call; nothing was done.
- `OperationPending` (503, `operation_pending`, Retry-After): the call reached Temporal
  but its answer did not come by the deadline. The operation goes on in Temporal; the
  same request again (same `Idempotency-Key`, so the same workflow and update ids)
  finds it and answers with its outcome.
- `WorkflowNotFound`: no run of that workflow id is open (a signal or an update to an
  ended workflow); the route decides what that means.

Update failures (`WorkflowUpdateFailedError`) and workflow failures
(`WorkflowFailureError`) are the workflow's answer: they become `WorkflowRefused`, by
the one table of api/errors.py, with the `Operation`'s own answer for an unlisted type.
Routes hold no Temporal error handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deadlines import Deadline
from api.errors import WORKFLOW_FAILED, ApiError, ErrorAnswer, workflow_refusal
from onramp.settings import PayloadKey
from onramp.temporal import connect_temporal
from workflows import search_attributes
from workflows.contracts.common import QueryRef, SignalRef, UpdateRef, WorkflowRef

InputT = TypeVar("InputT", bound=BaseModel)
ArgT = TypeVar("ArgT", bound=BaseModel)
ResultT = TypeVar("ResultT")
T = TypeVar("T")

# What a 503 asks of the client: a retry soon, when Temporal may answer again (or
# the pending operation may have finished).
RETRY_AFTER_SECONDS = 2


class TemporalUnavailable(ApiError):
    """Temporal could not be reached, or refused the call: 503 with Retry-After."""

    def __init__(self, message: str, *, code: str = "temporal_unavailable") -> None:
        super().__init__(503, code, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class OperationPending(TemporalUnavailable):
    """The call reached Temporal but its answer missed the deadline; it goes on."""

    def __init__(self, what: str, deadline: Deadline) -> None:
        super().__init__(
            f"{what[0].upper()}{what[1:]} did not finish within {deadline.seconds:g} s and "
            "may still complete; retry (with the same Idempotency-Key) for its answer",
            code="operation_pending",
        )


class WorkflowNotFound(Exception):
    """No open run has this workflow id."""


@dataclass(frozen=True)
class Operation:
    """What a call does, for its messages, and its answer when the workflow refuses it
    with a type the table of api/errors.py does not list."""

    what: str
    failed: ErrorAnswer = WORKFLOW_FAILED
    # The `{message}` of `failed` when the failure carries no ApplicationError.
    failed_text: str = "The operation failed"


def _collect_start_error(start: WithStartWorkflowOperation[Any, Any]) -> None:
    """Mark the start's outcome as seen. When the update is given up at the deadline,
    the SDK stores the cancellation on the start operation's handle future, which
    nobody awaits; asyncio would log "Future exception was never retrieved" for
    every such answer."""
    future = getattr(start, "_workflow_handle", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()


class TemporalGateway:
    """Hands out one shared Temporal client, connecting lazily, and makes every call."""

    def __init__(
        self,
        address: str,
        namespace: str,
        rpc_timeout: timedelta,
        payload_keys: Sequence[PayloadKey] = (),
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.payload_keys = payload_keys
        # The deadline of calls that wait for nothing but Temporal itself (a signal, a
        # query, a describe), and the bound of one connection attempt.
        self.rpc_timeout = rpc_timeout
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    def quick_deadline(self) -> Deadline:
        """A deadline for a call that waits for nothing but Temporal itself."""
        return Deadline.after(self.rpc_timeout.total_seconds())

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can
                    # swallow a cancellation that arrives as the connection completes,
                    # and a background task stopped at that moment would run on.
                    async with asyncio.timeout(self.rpc_timeout.total_seconds()):
                        self._client = await connect_temporal(
                            self.address,
                            self.namespace,
                            fail_fast=True,
                            payload_keys=self.payload_keys,
                        )
                except (TimeoutError, RuntimeError, OSError) as error:
                    raise TemporalUnavailable(
                        f"Cannot reach Temporal at {self.address}: {error or 'no answer'}"
                    ) from error
            return self._client

    async def _call(
        self,
        what: str | Operation,
        deadline: Deadline,
        call: Callable[[Client, timedelta], Awaitable[T]],
    ) -> T:
        """Run `call` within what is left of `deadline`; convert Temporal's errors."""
        operation = what if isinstance(what, Operation) else Operation(what)
        what = operation.what
        reached = False
        try:
            async with asyncio.timeout(deadline.remaining()):
                client = await self.client()
                reached = True
                # Temporal is told the deadline too: it ends its long polls by then.
                rpc_timeout = timedelta(seconds=max(deadline.remaining(), 0.001))
                return await call(client, rpc_timeout)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            if reached:
                raise OperationPending(what, deadline) from None
            raise TemporalUnavailable(
                f"Temporal at {self.address} did not answer within {deadline.seconds:g} s"
            ) from None
        except (WorkflowUpdateFailedError, WorkflowFailureError) as failure:
            raise workflow_refusal(failure, operation.failed, operation.failed_text) from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowNotFound(error.message) from None
            if error.status == RPCStatusCode.DEADLINE_EXCEEDED and reached:
                raise OperationPending(what, deadline) from None
            raise TemporalUnavailable(
                f"Temporal refused {what}: {error.status.name}: {error.message}"
            ) from None

    async def start_workflow(
        self,
        workflow: WorkflowRef[InputT, ResultT],
        start_input: InputT,
        *,
        workflow_id: str,
        user_id: str,
        task_queue: str,
        deadline: Deadline,
        operation: Operation,
    ) -> WorkflowHandle[Any, ResultT]:
        """Start a workflow, or find the open run of its id (USE_EXISTING)."""

        async def start(client: Client, rpc_timeout: timedelta) -> WorkflowHandle[Any, ResultT]:
            return await client.start_workflow(
                workflow.name,
                start_input,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=search_attributes.user_id_attributes(user_id),
                result_type=workflow.result,
                rpc_timeout=rpc_timeout,
            )

        return await self._call(operation, deadline, start)

    async def result(
        self, handle: WorkflowHandle[Any, ResultT], *, deadline: Deadline, operation: Operation
    ) -> ResultT:
        """The workflow's result; `OperationPending` when it has not ended by the deadline."""

        async def result(_: Client, rpc_timeout: timedelta) -> ResultT:
            return await handle.result(rpc_timeout=rpc_timeout)

        return await self._call(operation, deadline, result)

    async def update_with_start(
        self,
        update: UpdateRef[InputT, ArgT, ResultT],
        argument: ArgT,
        *,
        start_input: InputT,
        workflow_id: str,
        user_id: str,
        task_queue: str,
        update_id: str,
        deadline: Deadline,
        operation: Operation,
    ) -> ResultT:
        """Run one update on a per-user entity workflow, starting it if no run is open.

        The update id names the operation: a retried request with the same id attaches
        to the same update (Temporal deduplicates it) and gets its outcome.
        """

        async def update_with_start(client: Client, rpc_timeout: timedelta) -> ResultT:
            start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                update.workflow.name,
                start_input,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=search_attributes.user_id_attributes(user_id),
            )
            try:
                result: ResultT = await client.execute_update_with_start_workflow(
                    update.name,
                    argument,
                    id=update_id,
                    start_workflow_operation=start,
                    result_type=update.result,
                    rpc_timeout=rpc_timeout,
                )
            finally:
                _collect_start_error(start)
            return result

        return await self._call(operation, deadline, update_with_start)

    async def update(
        self,
        update: UpdateRef[Any, ArgT, ResultT],
        argument: ArgT,
        *,
        workflow_id: str,
        update_id: str | None = None,
        deadline: Deadline,
        operation: Operation,
    ) -> ResultT:
        """Run one update on the open run of `workflow_id` (`WorkflowNotFound` if none)."""

        async def execute(client: Client, rpc_timeout: timedelta) -> ResultT:
            result: ResultT = await client.get_workflow_handle(workflow_id).execute_update(
                update.name,
                argument,
                id=update_id,
                result_type=update.result,
                rpc_timeout=rpc_timeout,
            )
            return result

        return await self._call(operation, deadline, execute)

    async def signal(
        self,
        signal: SignalRef[ArgT],
        argument: ArgT,
        *,
        workflow_id: str,
        deadline: Deadline | None = None,
    ) -> None:
        """Signal the open run of `workflow_id` (`WorkflowNotFound` if none)."""

        async def send(client: Client, rpc_timeout: timedelta) -> None:
            await client.get_workflow_handle(workflow_id).signal(
                signal.name, argument, rpc_timeout=rpc_timeout
            )

        await self._call(f"the signal {signal.name}", deadline or self.quick_deadline(), send)

    async def signal_with_start(
        self,
        signal: SignalRef[ArgT],
        argument: ArgT,
        *,
        start_input: BaseModel,
        workflow_id: str,
        task_queue: str,
        deadline: Deadline | None = None,
    ) -> None:
        """Signal the open run of `workflow_id`, starting it with `start_input` if none is
        open (for entity workflows that are not about one user)."""

        async def send(client: Client, rpc_timeout: timedelta) -> None:
            await client.start_workflow(
                signal.workflow.name,
                start_input,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal=signal.name,
                start_signal_args=[argument],
                rpc_timeout=rpc_timeout,
            )

        await self._call(f"the signal {signal.name}", deadline or self.quick_deadline(), send)

    async def ensure_started(
        self,
        workflow: WorkflowRef[InputT, ResultT],
        start_input: InputT,
        *,
        workflow_id: str,
        task_queue: str,
        deadline: Deadline | None = None,
    ) -> None:
        """Start `workflow_id` unless a run of it is open; an open run is left alone and
        its history gains nothing (for entity workflows that are not about one user)."""

        async def start(client: Client, rpc_timeout: timedelta) -> None:
            await client.start_workflow(
                workflow.name,
                start_input,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                rpc_timeout=rpc_timeout,
            )

        await self._call(f"the start of {workflow.name}", deadline or self.quick_deadline(), start)

    async def query(
        self, query: QueryRef[ResultT], *, workflow_id: str, deadline: Deadline | None = None
    ) -> ResultT:
        """Ask the latest run of `workflow_id` (`WorkflowNotFound` if there is none)."""

        async def ask(client: Client, rpc_timeout: timedelta) -> ResultT:
            result: ResultT = await client.get_workflow_handle(workflow_id).query(
                query.name, result_type=query.result, rpc_timeout=rpc_timeout
            )
            return result

        return await self._call(f"the query {query.name}", deadline or self.quick_deadline(), ask)

    async def describe(
        self, workflow_id: str, *, deadline: Deadline | None = None
    ) -> WorkflowExecutionDescription:
        """The latest run of `workflow_id` (`WorkflowNotFound` if there is none)."""

        async def describe(client: Client, rpc_timeout: timedelta) -> WorkflowExecutionDescription:
            return await client.get_workflow_handle(workflow_id).describe(rpc_timeout=rpc_timeout)

        return await self._call(
            f"describing {workflow_id}", deadline or self.quick_deadline(), describe
        )

    async def is_running(self, workflow_id: str, *, deadline: Deadline | None = None) -> bool:
        """Whether the latest run of `workflow_id` runs (`WorkflowNotFound` if none)."""
        description = await self.describe(workflow_id, deadline=deadline)
        return description.status == WorkflowExecutionStatus.RUNNING
