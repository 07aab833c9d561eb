"""A user's subscription: read it, change it, list invoices.

Reads come from Postgres only. Changes are updates of `subscription-<user>`, sent
with update-with-start (the workflow may not run yet); the client's `Idempotency-Key`
names the update (so Stripe keys derived from it are the same on a retry) and the
Postgres record of the `Idempotency` dependency answers a retried request with the
first answer.

A payment that needs the customer (3-D Secure) is `payment_state: requires_action` with
`next_action: {"type": "authenticate_payment", "url": <Stripe's hosted invoice page>}`;
the change that waits for it answers 202. A free user upgrading without a payment method
gets 409 `payment_method_required` with `next_action: {"type": "checkout", ...}`
(docs/SUBSCRIPTIONS.md says why an error and not a 200).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import ClientKey
from api.deps import Pool
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.subscription_changes import (
    CHANGE_RESPONSES,
    PAYMENT_RESPONSES,
    Changes,
    SubscriptionChange,
    SubscriptionResponse,
    subscription_of,
)
from api.user_guard import ActiveUser, require_active_user
from onramp.repositories import invoices
from workflows.contracts.common import BillingCycle, Tier
from workflows.contracts.subscription import (
    CANCEL,
    DOWNGRADE,
    REACTIVATE,
    UPDATE_PAYMENT_METHOD,
    UPGRADE,
    DowngradeRequest,
    EmptyRequest,
    PaymentMethodRequest,
    UpgradeRequest,
)

router = APIRouter(prefix="/v1/users", tags=["subscriptions"], responses=ERROR_RESPONSES)


class InvoiceResponse(invoices.InvoiceRow):
    """One invoice of the mirror, as stored (`onramp.repositories.invoices.InvoiceRow`)."""


class InvoiceList(BaseModel):
    data: list[InvoiceResponse]
    has_more: bool


class UpgradeBody(BaseModel):
    tier: Literal["pro", "enterprise"]
    billing_cycle: BillingCycle = "monthly"
    payment_method: str | None = Field(
        default=None,
        pattern=r"^pm_[A-Za-z0-9_]+$",
        description="a payment method the platform collected; required for a new "
        "subscription (without one: 409 with the Checkout next action), optional for a "
        "price change (which otherwise charges the subscription's own payment method)",
    )


class DowngradeBody(BaseModel):
    tier: Tier = Field(description="a lower paid tier, or free (at the period end)")
    billing_cycle: BillingCycle | None = None


class PaymentMethodBody(BaseModel):
    payment_method: str = Field(pattern=r"^pm_[A-Za-z0-9_]+$")


@router.get(
    "/{user_id}/subscription",
    summary="Tier, status, billing cycle and Stripe ids of a user's subscription",
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
async def get_subscription(_: ClientKey, user: ActiveUser, pool: Pool) -> SubscriptionResponse:
    return await subscription_of(pool, user)


@router.post(
    "/{user_id}/subscription/upgrade",
    summary="Upgrade through Stripe (creates the customer and subscription if needed)",
    response_model=SubscriptionResponse,
    responses=PAYMENT_RESPONSES,
)
async def upgrade(
    user_id: uuid.UUID,
    key: ClientKey,
    body: UpgradeBody,
    changes: Changes,
) -> JSONResponse:
    change = SubscriptionChange(key.name, str(user_id), body.model_dump())
    return await changes.run(change, UPGRADE, UpgradeRequest(**body.model_dump()))


@router.post(
    "/{user_id}/subscription/downgrade",
    summary="Downgrade to a lower paid tier, or to free at the period end",
    response_model=SubscriptionResponse,
    responses=PAYMENT_RESPONSES,
)
async def downgrade(
    user_id: uuid.UUID,
    key: ClientKey,
    body: DowngradeBody,
    changes: Changes,
) -> JSONResponse:
    change = SubscriptionChange(key.name, str(user_id), body.model_dump())
    return await changes.run(change, DOWNGRADE, DowngradeRequest(**body.model_dump()))


@router.post(
    "/{user_id}/subscription/cancel",
    summary="Cancel at the period end (cancel_at_period_end=true)",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def cancel(
    user_id: uuid.UUID,
    key: ClientKey,
    changes: Changes,
) -> JSONResponse:
    change = SubscriptionChange(key.name, str(user_id), {})
    return await changes.run(change, CANCEL, EmptyRequest())


@router.post(
    "/{user_id}/subscription/reactivate",
    summary="Undo a cancellation before the period ends (cancel_at_period_end=false)",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def reactivate(
    user_id: uuid.UUID,
    key: ClientKey,
    changes: Changes,
) -> JSONResponse:
    change = SubscriptionChange(key.name, str(user_id), {})
    return await changes.run(change, REACTIVATE, EmptyRequest())


@router.put(
    "/{user_id}/subscription/payment-method",
    summary="Attach a payment method and make it the subscription's default",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def update_payment_method(
    user_id: uuid.UUID,
    key: ClientKey,
    body: PaymentMethodBody,
    changes: Changes,
) -> JSONResponse:
    change = SubscriptionChange(key.name, str(user_id), body.model_dump())
    return await changes.run(
        change, UPDATE_PAYMENT_METHOD, PaymentMethodRequest(payment_method=body.payment_method)
    )


@router.get(
    "/{user_id}/invoices",
    summary="The user's invoices, newest first, from the mirror (empty without Stripe)",
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
async def list_invoices(
    user_id: uuid.UUID,
    _: ClientKey,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[str | None, Query(pattern=r"^in_\w+$")] = None,
) -> InvoiceList:
    # Checked here, not by ActiveUser: an invalid query answers 422 first.
    user = await require_active_user(pool, str(user_id))
    if user.stripe_customer_id is None:
        return InvoiceList(data=[], has_more=False)
    rows = await invoices.list_invoices(
        pool, user.user_id, limit=limit + 1, starting_after=starting_after
    )
    return InvoiceList(
        data=[InvoiceResponse.model_validate(row.model_dump()) for row in rows[:limit]],
        has_more=len(rows) > limit,
    )
