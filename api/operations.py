"""The API's calls to its workflows, one function each, over the gateway.

Routes call these and never Temporal: each names its `Operation` (its messages and its
answer to a refusal the table of api/errors.py does not list), and the per-user entity
workflows (checkout, onboarding, subscription) share one update-with-start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from api.deadlines import Deadline
from api.errors import ApiError, ErrorAnswer, WorkflowRefused
from api.temporal_gateway import Operation, TemporalGateway
from onramp.settings import ApiSettings
from workflows import errors
from workflows.contracts.checkout import (
    START_CHECKOUT,
    CheckoutStarted,
    CheckoutWorkflowInput,
    StartCheckoutRequest,
    checkout_workflow_id,
)
from workflows.contracts.common import UpdateRef
from workflows.contracts.onboarding import OnboardingWorkflowInput, onboarding_workflow_id
from workflows.contracts.subscription import (
    SubscriptionWorkflowInput,
    UpgradeRequest,
    subscription_workflow_id,
)

InputT = TypeVar("InputT", bound=BaseModel)
ArgT = TypeVar("ArgT", bound=BaseModel)
ResultT = TypeVar("ResultT")

SIGNUP = Operation(
    "the signup",
    ErrorAnswer(502, "signup_failed", "{message}; nothing was kept, try again"),
    "Signup failed",
)
CHECKOUT = Operation(
    "the checkout",
    ErrorAnswer(502, "stripe_error", "{message}; nothing was kept, try again"),
    "checkout failed",
)
ONBOARDING = Operation(
    "onboarding",
    ErrorAnswer(
        502,
        "stripe_unavailable",
        "Stripe could not create the onboarding link; the link still works, try again",
        headers={"Retry-After": "5"},
    ),
    "Onboarding failed",
)
SUBSCRIPTION_CHANGE = Operation(
    "the subscription change",
    ErrorAnswer(502, "subscription_change_failed"),
    "The subscription change failed",
)
PROVISIONING_RETRY = Operation(
    "the provisioning retry",
    ErrorAnswer(409, "retry_refused"),
    "The provisioning retry was refused",
)


@dataclass(frozen=True)
class Entity(Generic[InputT]):
    """A per-user entity workflow: its id, its start input, its operation."""

    workflow_id: Callable[[str], str]
    start_input: Callable[[str, ApiSettings], InputT]
    operation: Operation


CHECKOUT_ENTITY = Entity(
    checkout_workflow_id, lambda user_id, _: CheckoutWorkflowInput(user_id=user_id), CHECKOUT
)
ONBOARDING_ENTITY = Entity(
    onboarding_workflow_id,
    lambda user_id, settings: OnboardingWorkflowInput(
        user_id=user_id, poll_seconds=settings.onboarding_poll_seconds
    ),
    ONBOARDING,
)
SUBSCRIPTION_ENTITY = Entity(
    subscription_workflow_id,
    lambda user_id, _: SubscriptionWorkflowInput(user_id=user_id),
    SUBSCRIPTION_CHANGE,
)


async def update_entity(
    temporal: TemporalGateway,
    settings: ApiSettings,
    entity: Entity[InputT],
    update: UpdateRef[InputT, ArgT, ResultT],
    argument: ArgT,
    *,
    user_id: str,
    update_id: str,
    deadline: Deadline,
) -> ResultT:
    """Run one update on the user's entity workflow, starting it if no run is open.

    The update id names the operation: a retried request with the same id attaches to
    the same update and gets its outcome."""
    return await temporal.update_with_start(
        update,
        argument,
        start_input=entity.start_input(user_id, settings),
        workflow_id=entity.workflow_id(user_id),
        user_id=user_id,
        task_queue=settings.temporal_task_queue,
        update_id=update_id,
        deadline=deadline,
        operation=entity.operation,
    )


# A run that just decided (expired, payment failed) refuses new starts while it ends.
_CLOSING_RETRIES = 20


async def start_checkout(
    temporal: TemporalGateway,
    settings: ApiSettings,
    argument: StartCheckoutRequest,
    *,
    user_id: str,
    update_id: str,
    deadline: Deadline,
) -> CheckoutStarted:
    """Start (or resume) the user's checkout; waits out a run that is closing."""
    for _ in range(_CLOSING_RETRIES):
        try:
            return await update_entity(
                temporal, settings, CHECKOUT_ENTITY, START_CHECKOUT, argument,
                user_id=user_id, update_id=update_id, deadline=deadline,
            )  # fmt: skip
        except WorkflowRefused as refused:
            if refused.error_type != errors.CHECKOUT_CLOSED:
                raise
            await asyncio.sleep(min(0.25, deadline.remaining()))
    raise ApiError(409, "checkout_closing", "The previous checkout is ending; retry shortly")


def checkout_next_action(user_id: str, argument: Any) -> dict[str, Any]:
    """Where a user without a payment method goes: Checkout collects the card and
    starts the subscription in one step."""
    body: dict[str, Any] = {"user_id": user_id}
    if isinstance(argument, UpgradeRequest):
        body |= {"tier": argument.tier, "billing_cycle": argument.billing_cycle}
    return {
        "next_action": {"type": "checkout", "method": "POST", "path": "/v1/checkout", "body": body}
    }


async def change_subscription(
    temporal: TemporalGateway,
    settings: ApiSettings,
    update: UpdateRef[SubscriptionWorkflowInput, ArgT, Any],
    argument: ArgT,
    *,
    user_id: str,
    update_id: str,
    deadline: Deadline,
) -> None:
    """One update of `subscription-<user>`; returns once it completed. A refusal for
    want of a payment method carries the Checkout next action beside the error."""
    try:
        await update_entity(
            temporal, settings, SUBSCRIPTION_ENTITY, update, argument,
            user_id=user_id, update_id=update_id, deadline=deadline,
        )  # fmt: skip
    except WorkflowRefused as refused:
        if refused.error_type == errors.PAYMENT_METHOD_REQUIRED:
            refused.extra = checkout_next_action(user_id, argument)
        raise


async def update_onboarding(
    temporal: TemporalGateway,
    settings: ApiSettings,
    update: UpdateRef[OnboardingWorkflowInput, ArgT, ResultT],
    argument: ArgT,
    *,
    user_id: str,
    update_id: str,
) -> ResultT:
    """One update of `onboarding-<user>` within ONBOARDING_LINK_WAIT_SECONDS."""
    return await update_entity(
        temporal, settings, ONBOARDING_ENTITY, update, argument, user_id=user_id,
        update_id=update_id, deadline=Deadline.after(settings.onboarding_link_wait_seconds),
    )  # fmt: skip
