"""The one helper for step failures and the one for idempotency keys.

The keys are sent to Stripe and recorded in histories, so their text is pinned here:
`<workflow id>/<update id or run id>/<step>` and `<workflow id>/<object id>/<step>`.
"""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from workflows import errors, failures, idempotency_keys


def _activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity error",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="create_stripe_customer",
        activity_id="1",
        retry_state=None,
    )
    error.__cause__ = cause
    return error


def test_a_local_steps_bare_failure_and_an_activity_error_read_alike() -> None:
    declined = ApplicationError("card declined", type=errors.STRIPE_CARD_ERROR)
    for error in (declined, _activity_error(declined)):
        assert isinstance(error, failures.STEP_FAILURES)
        assert failures.cause_of(error) is declined
        assert failures.failure_type(error) == errors.STRIPE_CARD_ERROR
        assert failures.failure_message(error) == "card declined"
        update_failure = failures.as_update_failure(error)
        assert (update_failure.type, update_failure.message) == (
            errors.STRIPE_CARD_ERROR,
            "card declined",
        )
        assert update_failure.non_retryable


def test_an_untyped_failure_becomes_stripe_unavailable_unless_told_otherwise() -> None:
    timed_out = _activity_error(
        TimeoutError(
            "activity timed out", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
        )
    )
    assert failures.failure_type(timed_out) is None
    assert failures.as_update_failure(timed_out).type == errors.STRIPE_UNAVAILABLE
    assert failures.as_update_failure(timed_out, default_type=None).type is None


def test_the_failure_chain_follows_nested_causes() -> None:
    last_attempt = ApplicationError("Stripe answered 503", type=errors.STRIPE_UNAVAILABLE)
    giving_up = ApplicationError("retries exhausted")
    giving_up.__cause__ = last_attempt
    chain = failures.failure_chain(_activity_error(giving_up))
    assert chain == "retries exhausted <- StripeUnavailable: Stripe answered 503"


def test_a_refusal_is_typed_and_never_retried() -> None:
    refusal = failures.refuse("no", errors.SUBSCRIPTION_CONFLICT, {"step": "x"})
    assert (refusal.type, refusal.non_retryable, refusal.details) == (
        errors.SUBSCRIPTION_CONFLICT,
        True,
        ({"step": "x"},),
    )
    assert failures.refused(failures.Refusal("no", errors.CHECKOUT_CLOSED)).type == (
        errors.CHECKOUT_CLOSED
    )


@workflow.defn(name="IdempotencyKeysProbe")
class IdempotencyKeysProbe:
    def __init__(self) -> None:
        self._done = False

    @workflow.update(name="keys")
    def keys(self) -> list[str]:
        return [idempotency_keys.operation_id(), idempotency_keys.operation_key("create_session")]

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self._done)
        return [
            idempotency_keys.operation_key("change_price"),
            idempotency_keys.run_key("handover"),
            idempotency_keys.object_key("sub_123", "cancel"),
        ]


async def test_keys_name_the_workflow_the_operation_and_the_step(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    task_queue = f"keys-{uuid.uuid4().hex[:10]}"
    workflow_id = f"keys-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[IdempotencyKeysProbe],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            IdempotencyKeysProbe.run, id=workflow_id, task_queue=task_queue
        )
        in_update = await handle.execute_update(IdempotencyKeysProbe.keys, id="update-1")
        await handle.signal(IdempotencyKeysProbe.finish)
        in_run = await handle.result()
    run_id = (await handle.describe()).run_id
    assert in_update == ["update-1", f"{workflow_id}/update-1/create_session"]
    assert in_run == [
        f"{workflow_id}/{run_id}/change_price",
        f"{workflow_id}/{run_id}/handover",
        f"{workflow_id}/sub_123/cancel",
    ]
