"""Postgres-only steps run as local activities.

A step that only reads or writes onramp's own Postgres (a state change, a token row, a
workspace, the billing mirror) runs in the worker that runs the workflow, inside the
workflow task: no activity task goes through the server and back, which is most of the
cost of a step on a loaded engine (docs/BENCHMARKS.md). Its result is recorded as a
marker in the history, so replay does not run it again; a worker that dies before the
workflow task completes runs it again, which the steps allow — each one is idempotent,
as every activity is. Calls to Stripe, SMTP or another workflow stay regular activities:
they are slow, rate-limited or long-running, and belong on their own task queue slots
and timeouts.

Histories recorded before this change scheduled these steps as regular activities; the
patch keeps those runs (and a long-lived `subscription-<user>` until its next
continue-as-new) on the old path (docs/REPLAY.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, overload

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError
from temporalio.types import (
    MethodAsyncNoParam,
    MethodAsyncSingleParam,
    ParamType,
    ReturnType,
    SelfType,
)

from workflows import policies

LOCAL_DATABASE_STEPS_PATCH = "local-database-steps"
# The marker under which a local activity's result is recorded in the history (for
# readers of histories: the tests and the benchmarks).
LOCAL_ACTIVITY_MARKER = "core_local_activity"
_NO_ARG = object()


@overload
async def database_step(activity: MethodAsyncNoParam[SelfType, ReturnType]) -> ReturnType: ...


@overload
async def database_step(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType], arg: ParamType
) -> ReturnType: ...


async def database_step(activity: Callable[..., Awaitable[Any]], arg: Any = _NO_ARG) -> Any:
    """Run a Postgres-only activity method with the `DATABASE` timeouts and retries.

    Fails with `ActivityError` (its cause the activity's error) on both paths: the SDK
    raises a local activity's failure bare, and callers catch `ActivityError` to
    compensate whatever kind of activity failed.
    """
    args = () if arg is _NO_ARG else (arg,)
    if not workflow.patched(LOCAL_DATABASE_STEPS_PATCH):
        return await workflow.execute_activity_method(activity, args=args, **policies.DATABASE)
    try:
        return await workflow.execute_local_activity_method(
            activity, args=args, **policies.DATABASE
        )
    except ActivityError:
        raise
    except FailureError as failure:
        name = getattr(activity, "__name__", "local activity")
        raise ActivityError(
            f"local activity {name} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=name,
            activity_id="",
            retry_state=None,
        ) from failure
