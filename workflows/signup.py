"""Signup: profile → Stripe customer → Connect account, in that order or not at all.

The profile is committed first (a duplicate email fails here, before any Stripe call).
Then the shared ensure steps create the customer (unless the platform defers it,
`stripe_customer="lazy"`) and, for users who receive payouts, an Express account. If a
later step fails for good, the run compensates in reverse — delete the account and
the customer it created, then remove the profile — and fails with a clear error.
Its starter sets the `OnrampUserId` search attribute (the API does), so operators find
it by user id.

A user who signed up has a tier, so the run ends by starting the user's long-lived
`subscription-<user>` (an abandoned child: it outlives this run). Started here, it is
running and cached on a worker when a checkout hands it a paid subscription, instead of
being created on the paid path, where a new workflow's first task could wait seconds
behind a busy queue.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows import errors, failures, policies, search_attributes
from workflows.contracts.common import (
    DeleteStripeObjectInput,
    InsertProfileInput,
    UserRecord,
    UserRef,
)
from workflows.contracts.signup import SIGNUP_WORKFLOW, SignupInput, SignupResult, SignupStatus
from workflows.contracts.subscription import (
    SUBSCRIPTION_WORKFLOW,
    SubscriptionWorkflowInput,
    subscription_workflow_id,
)
from workflows.ensure import ensure_connect_account, ensure_stripe_customer
from workflows.local_steps import database_step

with workflow.unsafe.imports_passed_through():
    from activities.stripe_customers import StripeCustomerActivities
    from activities.users import UserActivities


@workflow.defn(name=SIGNUP_WORKFLOW)
class SignupWorkflow:
    def __init__(self) -> None:
        self._status = SignupStatus(step="profile")

    @workflow.query
    def status(self) -> SignupStatus:
        return self._status

    @workflow.run
    async def run(self, request: SignupInput) -> SignupResult:
        try:
            await database_step(
                UserActivities.insert_profile,
                InsertProfileInput(
                    user_id=request.user_id,
                    email=request.email,
                    username=request.username,
                    wants_payouts=request.payouts,
                ),
            )
        except failures.STEP_FAILURES as error:
            self._status = SignupStatus(step="failed", error=failures.failure_message(error))
            raise _failure(error, "profile") from None

        created_customer: str | None = None
        created_account: str | None = None
        try:
            if request.stripe_customer == "eager":
                self._status = SignupStatus(step="stripe_customer")
                customer = await ensure_stripe_customer(request.user_id)
                self._status.stripe_customer_id = customer.stripe_id
                if customer.created_by_this_call:
                    created_customer = customer.stripe_id
            if request.payouts:
                self._status.step = "connect_account"
                account = await ensure_connect_account(request.user_id)
                self._status.connect_account_id = account.stripe_id
                if account.created_by_this_call:
                    created_account = account.stripe_id
            user: UserRecord = await database_step(
                UserActivities.mark_user_active, UserRef(user_id=request.user_id)
            )
        except failures.STEP_FAILURES as error:
            failed_step = self._status.step
            self._status = SignupStatus(step="compensating", error=failures.failure_message(error))
            await self._compensate(request.user_id, created_customer, created_account)
            self._status.step = "failed"
            raise _failure(error, failed_step) from None

        await _start_subscription_workflow(request.user_id)
        self._status.step = "complete"
        return SignupResult(
            user_id=user.user_id,
            email=user.email,
            username=user.username,
            status=user.status,
            stripe_customer_id=user.stripe_customer_id,
            connect_account_id=user.connect_account_id,
        )

    async def _compensate(
        self, user_id: str, customer_id: str | None, account_id: str | None
    ) -> None:
        """Undo in reverse order; each step is "delete if present" and retried until done."""
        workflow.logger.warning("SIGNUP_COMPENSATING", extra={"user_id": user_id})
        if account_id is not None:
            await workflow.execute_activity_method(
                StripeCustomerActivities.delete_connect_account,
                DeleteStripeObjectInput(stripe_id=account_id),
                **policies.STRIPE_WRITE,
            )
        if customer_id is not None:
            await workflow.execute_activity_method(
                StripeCustomerActivities.delete_stripe_customer,
                DeleteStripeObjectInput(stripe_id=customer_id),
                **policies.STRIPE_WRITE,
            )
        await database_step(UserActivities.delete_signing_up_profile, UserRef(user_id=user_id))


async def _start_subscription_workflow(user_id: str) -> None:
    """`subscription-<user>` as a child the signup abandons; one already running (an
    admin override got there first) is the user's, and is left as it is."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            SUBSCRIPTION_WORKFLOW,
            SubscriptionWorkflowInput(user_id=user_id),
            id=subscription_workflow_id(user_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search_attributes.user_id_attributes(user_id),
        )


def _failure(error: BaseException, step: str) -> ApplicationError:
    if failures.failure_type(error) == errors.DUPLICATE_EMAIL:
        return failures.refuse(failures.failure_message(error), errors.DUPLICATE_EMAIL)
    return failures.refuse(
        f"signup failed at step {step}: {failures.failure_message(error)}",
        errors.SIGNUP_FAILED,
        {"step": step, "cause_type": failures.failure_type(error)},
    )
