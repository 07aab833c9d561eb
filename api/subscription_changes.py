"""A user's subscription as the API shows it, and the one way to change it.

Shared by the client's plan changes (api/routes/subscriptions.py) and the admin's tier
override (api/routes/admin_tier.py): a change is an update of `subscription-<user>`
(api/operations.py), run once per Idempotency-Key, answered with the subscription as
Postgres has it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from fastapi import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import ErrorResponse
from api.idempotency import Answer, Idempotency, IdempotentRequest
from api.operations import change_subscription
from api.temporal_gateway import TemporalGateway
from api.user_guard import require_active_user
from onramp.repositories import billing
from onramp.repositories.users import UserRow
from onramp.settings import ApiSettings
from workflows.contracts.common import BillingCycle, Tier, UpdateRef
from workflows.contracts.subscription import SubscriptionWorkflowInput

ArgT = TypeVar("ArgT", bound=BaseModel)

CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "No Stripe billing, a declined card, or a body that is not UTF-8",
    },
    404: {"model": ErrorResponse, "description": "Unknown user"},
    409: {
        "model": ErrorResponse,
        "description": "Still signing up, nothing to change, a payment method is required "
        "(next_action: checkout), the user's checkout is open, or a payment waits for the "
        "customer",
    },
    502: {"model": ErrorResponse, "description": "Stripe or the database failed the change"},
    503: {
        "model": ErrorResponse,
        "description": "Temporal unreachable, or the change not done within "
        "SUBSCRIPTION_UPDATE_WAIT_SECONDS (`operation_pending`: it goes on; retry with the "
        "same Idempotency-Key for its answer); with Retry-After",
    },
}


class NextAction(BaseModel):
    type: Literal["authenticate_payment"] = "authenticate_payment"
    url: str | None = Field(description="Stripe's hosted invoice page")
    invoice_id: str
    change: Literal["new_subscription", "price_change", "renewal"]


class SubscriptionResponse(BaseModel):
    user_id: str
    tier: Tier
    status: str = Field(description="Stripe's subscription status, or `none`")
    billing_cycle: BillingCycle | None
    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    stripe_price_id: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    grace_until: datetime | None
    admin_override: bool
    payment_state: Literal["settled", "requires_action"] = Field(
        default="settled",
        description="`requires_action`: a payment waits for the customer (next_action)",
    )
    next_action: NextAction | None = None


# A plan change that Stripe can only charge with the customer at hand (3-D Secure).
PAYMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CHANGE_RESPONSES,
    409: {
        "model": ErrorResponse,
        "description": CHANGE_RESPONSES[409]["description"]
        + ". `payment_method_required` carries, beside `error`, `next_action: {type: "
        '"checkout", method: "POST", path: "/v1/checkout", body: {user_id, tier, '
        "billing_cycle}}`",
    },
    202: {
        "model": SubscriptionResponse,
        "description": "Accepted: the payment waits for the customer "
        "(payment_state requires_action; next_action is Stripe's hosted invoice page)",
    },
}


async def subscription_response(db: asyncpg.Pool, user_id: str) -> SubscriptionResponse:
    """The subscription as Postgres has it now (the user re-read: a change may have
    given it a Stripe customer)."""
    return await subscription_of(db, await require_active_user(db, user_id))


async def subscription_of(db: asyncpg.Pool, user: UserRow) -> SubscriptionResponse:
    user_id = user.user_id
    row = await billing.get_billing(db, user_id)
    return SubscriptionResponse(
        user_id=user_id,
        tier=row.tier if row else user.tier,
        status=row.status if row else "none",
        billing_cycle=row.billing_cycle if row else None,
        stripe_customer_id=user.stripe_customer_id,
        stripe_subscription_id=row.stripe_subscription_id if row else None,
        stripe_price_id=row.stripe_price_id if row else None,
        cancel_at_period_end=row.cancel_at_period_end if row else False,
        current_period_end=row.current_period_end if row else None,
        grace_until=row.grace_until if row else None,
        admin_override=bool(row and row.admin_override_tier),
        payment_state=row.payment_state if row else "settled",
        next_action=(
            NextAction(
                url=row.payment_action_url,
                invoice_id=row.payment_action_invoice_id,
                change=row.payment_action_kind or "renewal",
            )
            if row and row.payment_action_invoice_id
            else None
        ),
    )


@dataclass(frozen=True)
class SubscriptionChange:
    """What a change route hands over: who asks, for whom, and the update to run."""

    client_name: str
    user_id: str
    body: dict[str, Any]
    # A plan change waiting for the customer's authentication is accepted (202), not
    # done; the admin's override charges nothing and always answers 200.
    may_wait_for_payment: bool = True


@dataclass(frozen=True)
class SubscriptionChanges:
    """What a plan change needs from the request (a route's one dependency for it)."""

    idempotency: IdempotentRequest
    settings: ApiSettings
    pool: asyncpg.Pool
    temporal: TemporalGateway

    async def run(
        self,
        change: SubscriptionChange,
        update: UpdateRef[SubscriptionWorkflowInput, ArgT, Any],
        argument: ArgT,
    ) -> JSONResponse:
        """Run the change once per Idempotency-Key; 200 with the subscription, or 202
        while a payment waits for the customer's authentication."""
        user_id = change.user_id
        deadline = Deadline.after(self.settings.subscription_update_wait_seconds)

        async def handler() -> Answer:
            # Checked here, not by the ActiveUser dependency: FastAPI resolves
            # dependencies before it validates the body, and an invalid body answers 422.
            await require_active_user(self.pool, user_id)
            await change_subscription(
                self.temporal, self.settings, update, argument, user_id=user_id,
                update_id=self.idempotency.id_for(change.client_name), deadline=deadline,
            )  # fmt: skip
            answer = await subscription_response(self.pool, user_id)
            # Accepted, not done: the change waits for the customer's authentication.
            waits = change.may_wait_for_payment and answer.payment_state == "requires_action"
            return Answer(202 if waits else 200, answer.model_dump(mode="json"))

        body = {"user_id": user_id, **change.body}
        return await self.idempotency.run(change.client_name, body, deadline, handler)


def _subscription_changes(
    idempotency: Idempotency, settings: Settings, pool: Pool, temporal: Temporal
) -> SubscriptionChanges:
    return SubscriptionChanges(idempotency, settings, pool, temporal)


Changes = Annotated[SubscriptionChanges, Depends(_subscription_changes)]
