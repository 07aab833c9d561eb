"""Database and hand-over activities of `checkout-<user>`.

Every state change of a checkout is written here as it happens, so the setup status
is read from Postgres alone. The hand-over asks `subscription-<user>` — the only writer
of subscriptions and tiers — to record the paid subscription, by update-with-start,
and returns once it has.
"""

from __future__ import annotations

import logging

import asyncpg
from temporalio import activity
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities import metrics
from onramp import checkout
from onramp.db import PERMANENT_DB_ERRORS
from onramp.logging import log_event
from onramp.repositories import billing
from onramp.repositories.checkout_runs import CheckoutRunChange, NewCheckoutRun
from onramp.settings import WorkerSettings
from workflows import errors, search_attributes
from workflows.contracts.checkout import (
    CheckoutConfig,
    HandOverInput,
    PaidSubscriptionCheck,
    RecordCheckoutSessionInput,
    RecordCheckoutStateInput,
)
from workflows.contracts.common import UserRef
from workflows.contracts.subscription import (
    CHECKOUT_HANDOVER_UPDATE,
    SUBSCRIPTION_WORKFLOW,
    CheckoutHandoverRequest,
    SubscriptionView,
    SubscriptionWorkflowInput,
    subscription_workflow_id,
)

logger = logging.getLogger(__name__)


def checkout_config_from(settings: WorkerSettings) -> CheckoutConfig:
    public = settings.onramp_public_url.rstrip("/")
    return CheckoutConfig(
        prices=settings.configured_prices(),
        # Stripe fills in {CHECKOUT_SESSION_ID} when it redirects.
        success_url=f"{public}/v1/checkout/return?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=settings.checkout_cancel_url or f"{public}/",
        reconcile_after_seconds=settings.checkout_reconcile_after_seconds,
        reconcile_max_seconds=settings.checkout_reconcile_max_seconds,
        reread_attempts=settings.checkout_reread_attempts,
        password_token_ttl_seconds=settings.set_password_token_ttl_seconds,
        provisioning_task_queue=settings.provisioning_task_queue,
    )


def new_run(request: RecordCheckoutSessionInput) -> NewCheckoutRun:
    return NewCheckoutRun(
        run_id=request.run_id,
        workflow_id=request.workflow_id,
        user_id=request.user_id,
        tier=request.tier,
        billing_cycle=request.billing_cycle,
        session_id=request.session_id,
        session_url=request.session_url,
    )


def run_change(request: RecordCheckoutStateInput) -> CheckoutRunChange:
    return CheckoutRunChange(
        run_id=request.run_id,
        session_status=request.session_status,
        payment_state=request.payment_state,
        payment_outcome=request.payment_outcome,
        provisioning_state=request.provisioning_state,
        provisioning_error=request.provisioning_error,
        password_state=request.password_state,
        subscription_id=request.subscription_id,
    )


class CheckoutActivities:
    def __init__(self, pool: asyncpg.Pool, config: CheckoutConfig) -> None:
        self.pool = pool
        self.config = config

    @activity.defn
    async def checkout_config(self) -> CheckoutConfig:
        return self.config

    @activity.defn
    async def check_paid_subscription(self, request: UserRef) -> PaidSubscriptionCheck:
        status = await billing.blocking_subscription(self.pool, request.user_id)
        return PaidSubscriptionCheck(
            has_paid_subscription=status is not None,
            subscription_status=status,
            reason=None if status is None else checkout.blocking_reason(status),
        )

    @activity.defn
    async def record_checkout_session(self, request: RecordCheckoutSessionInput) -> int:
        try:
            attempt = await checkout.record_session(self.pool, new_run(request))
        except PERMANENT_DB_ERRORS as error:
            raise ApplicationError(
                f"checkout run {request.run_id} not recorded: {error}",
                type=errors.PROVISIONING_REFUSED,
                non_retryable=True,
            ) from None
        log_event(
            logger, "CHECKOUT_RUN_RECORDED", user_id=request.user_id,
            workflow_id=request.workflow_id, attempt=attempt,
            checkout_session_id=request.session_id,
        )  # fmt: skip
        return attempt

    @activity.defn
    async def record_checkout_state(self, request: RecordCheckoutStateInput) -> None:
        change = run_change(request)
        before = await checkout.record_run_state(self.pool, change)
        metrics.observe_checkout_change(before, change)

    @activity.defn
    async def hand_over_subscription(self, request: HandOverInput) -> SubscriptionView:
        """Update-with-start on `subscription-<user>`; returns once it recorded the change."""
        client = activity.client()
        start: WithStartWorkflowOperation[object, None] = WithStartWorkflowOperation(
            SUBSCRIPTION_WORKFLOW,
            SubscriptionWorkflowInput(user_id=request.user_id),
            id=subscription_workflow_id(request.user_id),
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes.user_id_attributes(request.user_id),
        )
        try:
            view: SubscriptionView = await client.execute_update_with_start_workflow(
                CHECKOUT_HANDOVER_UPDATE,
                CheckoutHandoverRequest(subscription_id=request.subscription_id),
                id=request.update_id,
                start_workflow_operation=start,
                result_type=SubscriptionView,
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                raise ApplicationError(
                    f"hand-over of {request.subscription_id} refused: {cause.message}",
                    type=cause.type,
                    non_retryable=True,
                ) from None
            raise
        log_event(
            logger, "CHECKOUT_HANDED_OVER", user_id=request.user_id,
            stripe_subscription_id=request.subscription_id, tier=view.tier,
        )  # fmt: skip
        return view
