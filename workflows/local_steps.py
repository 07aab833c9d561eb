"""Short steps that run as local activities: Postgres-only steps, Stripe reads and the
welcome email.

A local activity runs in the worker that runs the workflow, inside the workflow task: no
activity task goes through the server and back, which is most of the cost of a step on
a loaded engine (docs/BENCHMARKS.md). Its result is recorded as a marker in the history,
so replay does not run it again; a worker that dies before the workflow task completes
runs it again, which these steps allow — each is idempotent, as every activity is.

- Every step that only reads or writes onramp's own Postgres (a state change, a token
  row, a workspace, the billing mirror): `database_step`.
- Every re-read of a Stripe object (`stripe_read_step`): a GET, safe to repeat, and on
  the paid path twice (the session, then the subscription at the hand-over). As
  regular activities each cost two trips through a loaded server's queues, the larger
  part of a paying user's wait. A read that Stripe answers slowly or refuses retries
  in the worker with the same policy; the SDK keeps the workflow task alive meanwhile
  and waits out long backoffs on a timer.
- The welcome email (`email_step`): one SMTP submission after the payment, on the path
  a paying user waits on. Its outbox row is claimed and marked sent around the
  send, so a repeated attempt finds it sent; its Message-ID is stable either way.

Stripe writes and calls to other workflows stay regular activities: a write repeated
after a lost workflow task would be a second request under its idempotency key (safe,
but not free), and a hand-over waits on another workflow for as long as that takes;
both belong on their own task slots and timeouts.

A step's failure reaches the caller as the SDK hands it over (`workflows.failures`
says what to catch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, overload

from temporalio import workflow
from temporalio.types import (
    MethodAsyncNoParam,
    MethodAsyncSingleParam,
    ParamType,
    ReturnType,
    SelfType,
)

from workflows import policies

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
    """A Postgres-only activity method, with the `DATABASE` timeouts and retries."""
    args = () if arg is _NO_ARG else (arg,)
    return await _local_step(activity, args, policies.DATABASE)


async def stripe_read_step(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    options: policies.ActivityOptions = policies.STRIPE_READ,
) -> ReturnType:
    """An activity method that re-reads one Stripe object, with the `STRIPE_READ`
    timeouts and retries unless the caller has its own."""
    result: ReturnType = await _local_step(activity, (arg,), options)
    return result


async def email_step(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType], arg: ParamType
) -> ReturnType:
    """An email activity method (the welcome email), with the `EMAIL` timeouts and
    retries."""
    result: ReturnType = await _local_step(activity, (arg,), policies.EMAIL)
    return result


async def _local_step(
    activity: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    options: policies.ActivityOptions,
) -> Any:
    # A local activity has no heartbeat (it lives in its workflow task).
    return await workflow.execute_local_activity_method(
        activity,
        args=args,
        start_to_close_timeout=options["start_to_close_timeout"],
        schedule_to_close_timeout=options["schedule_to_close_timeout"],
        retry_policy=options["retry_policy"],
    )
