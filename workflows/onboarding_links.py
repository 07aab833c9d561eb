"""The link half of `onboarding-<user>`: check the token, ensure the Express account
within the link's budget and create a fresh account link under the update's
idempotency key. A Stripe failure answers 502 and leaves the token untouched.

A mixin of `OnboardingWorkflow`, which is the one registered workflow (and holds the
`open_link` update that calls these); it holds the state these methods read.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows import errors, failures, idempotency_keys, onboarding_state, policies
from workflows.contracts.onboarding import (
    AccountLinkResult,
    CreateAccountLinkInput,
    OnboardingTokenRecord,
    OpenOnboardingLinkInput,
    TokenRef,
)
from workflows.ensure import ensure_connect_account
from workflows.local_steps import database_step
from workflows.onboarding_state import Token

with workflow.unsafe.imports_passed_through():
    from activities.onboarding import OnboardingActivities
    from activities.stripe_connect import StripeConnectActivities

# An end user waits on the link: Stripe gets a bounded number of tries inside the
# update, then the user sees a 502 and the token stays `pending`.
LINK_BUDGET = timedelta(seconds=20)
STRIPE_LINK: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=10),
    "schedule_to_close_timeout": LINK_BUDGET,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=4),
        maximum_attempts=3,
        non_retryable_error_types=errors.NON_RETRYABLE,
    ),
}


class OnboardingLinks:
    _user_id: str
    _tokens: onboarding_state.Tokens

    async def _open_token(self, token_id: str) -> OnboardingTokenRecord:
        try:
            record: OnboardingTokenRecord = await database_step(
                OnboardingActivities.read_onboarding_token, TokenRef(token_id=token_id)
            )
        except failures.STEP_FAILURES as error:
            raise failures.as_update_failure(error, default_type=None) from None
        refusal = onboarding_state.token_refusal(record, self._user_id, workflow.now())
        if refusal is not None:
            raise failures.refused(refusal)
        self._tokens.setdefault(token_id, Token(record.status, record.expires_at))
        return record

    async def _ensure_account_in_time(self) -> str:
        """The user's Express account (the shared ensure step), within the link's budget."""
        try:
            account = await asyncio.wait_for(
                ensure_connect_account(self._user_id), LINK_BUDGET.total_seconds()
            )
        except TimeoutError:
            raise failures.refuse(
                "Stripe did not create the Connect account in time; try again",
                errors.STRIPE_UNAVAILABLE,
            ) from None
        except failures.STEP_FAILURES as error:
            raise _stripe_failure(error, "ensure Connect account") from None
        return account.stripe_id

    async def _create_account_link(
        self, account_id: str, request: OpenOnboardingLinkInput
    ) -> AccountLinkResult:
        """A fresh account link under this update's idempotency key."""
        try:
            link: AccountLinkResult = await workflow.execute_activity_method(
                StripeConnectActivities.create_account_link,
                CreateAccountLinkInput(
                    account_id=account_id,
                    token_id=request.token_id,
                    public_url=request.public_url,
                    workflow_id=workflow.info().workflow_id,
                    operation_id=idempotency_keys.operation_id(),
                ),
                **STRIPE_LINK,
            )
        except failures.STEP_FAILURES as error:
            raise _stripe_failure(error, "create account link") from None
        return link


def _stripe_failure(error: BaseException, step: str) -> ApplicationError:
    """Stripe failed after the bounded retries: the API answers 502, the token is untouched."""
    cause_type = failures.failure_type(error)
    return failures.refuse(
        f"{step} failed: {failures.failure_message(error)}",
        cause_type or errors.STRIPE_UNAVAILABLE,
        {"step": step, "cause_type": cause_type},
    )
