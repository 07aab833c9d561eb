"""A user's subscription (SPEC 3.4 and 5): read it, change it, list invoices.

Reads come from Postgres only. Changes are updates of `subscription-<user>`, sent
with update-with-start (the workflow may not run yet); the client's `Idempotency-Key`
names the update (so Stripe keys derived from it are the same on a retry) and the
Postgres record of `run_once` answers a retried request with the first answer.

A payment that needs the customer (3-D Secure) is `payment_state: requires_action` with
`next_action: {"type": "authenticate_payment", "url": <Stripe's hosted invoice page>}`;
the change that waits for it answers 202. A free user upgrading without a payment method
gets 409 `payment_method_required` with `next_action: {"type": "checkout", ...}`
(docs/SUBSCRIPTIONS.md says why an error and not a 200).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.auth import ClientKey
from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from api.idempotency import Answer, run_once, stable_id
from api.temporal_gateway import TemporalGateway
from api.user_guard import require_active_user
from onramp.repositories import billing, invoices
from onramp.settings import ApiSettings
from workflows import errors
from workflows.contracts.common import BillingCycle, Tier, UpdateRef
from workflows.contracts.subscription import (
    CANCEL,
    DOWNGRADE,
    REACTIVATE,
    UPDATE_PAYMENT_METHOD,
    UPGRADE,
    DowngradeRequest,
    EmptyRequest,
    PaymentMethodRequest,
    SubscriptionWorkflowInput,
    UpgradeRequest,
    subscription_workflow_id,
)

ArgT = TypeVar("ArgT", bound=BaseModel)

router = APIRouter(prefix="/v1/users", tags=["subscriptions"], responses=ERROR_RESPONSES)

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


async def subscription_response(db: asyncpg.Pool, user_id: str) -> SubscriptionResponse:
    user = await require_active_user(db, user_id)
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


_ERRORS_BY_TYPE: dict[str, tuple[int, str]] = {
    errors.NO_STRIPE_BILLING: (400, "no_stripe_billing"),
    errors.SUBSCRIPTION_INVALID: (400, "invalid_plan_change"),
    errors.PRICE_NOT_CONFIGURED: (400, "price_not_configured"),
    errors.STRIPE_CARD_ERROR: (400, "card_declined"),
    errors.STRIPE_INVALID_REQUEST: (400, "stripe_invalid_request"),
    errors.SUBSCRIPTION_CONFLICT: (409, "subscription_conflict"),
    errors.PAYMENT_METHOD_REQUIRED: (409, "payment_method_required"),
    errors.CHECKOUT_OPEN: (409, "checkout_open"),
    errors.PAYMENT_PENDING: (409, "payment_pending"),
    errors.USER_NOT_FOUND: (404, "user_not_found"),
    errors.BILLING_WRITE_FAILED: (502, "billing_write_failed"),
}


def checkout_next_action(user_id: str, argument: Any) -> dict[str, Any]:
    """Where a user without a payment method goes: Checkout collects the card and
    starts the subscription in one step."""
    body: dict[str, Any] = {"user_id": user_id}
    if isinstance(argument, UpgradeRequest):
        body |= {"tier": argument.tier, "billing_cycle": argument.billing_cycle}
    return {
        "next_action": {"type": "checkout", "method": "POST", "path": "/v1/checkout", "body": body}
    }


def update_error(
    error: WorkflowUpdateFailedError, user_id: str = "", argument: Any = None
) -> ApiError:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        status, code = _ERRORS_BY_TYPE.get(cause.type or "", (502, "subscription_change_failed"))
        extra = None
        if cause.type == errors.PAYMENT_METHOD_REQUIRED:
            extra = checkout_next_action(user_id, argument)
        return ApiError(status, code, cause.message, extra=extra)
    return ApiError(502, "subscription_change_failed", "The subscription change failed")


async def run_update(
    temporal: TemporalGateway,
    settings: ApiSettings,
    user_id: str,
    update: UpdateRef[SubscriptionWorkflowInput, ArgT, Any],
    argument: ArgT,
    update_id: str,
    deadline: Deadline,
) -> None:
    """Update-with-start on `subscription-<user>`; returns once the update completed."""
    try:
        await temporal.update_with_start(
            update,
            argument,
            start_input=SubscriptionWorkflowInput(user_id=user_id),
            workflow_id=subscription_workflow_id(user_id),
            user_id=user_id,
            task_queue=settings.temporal_task_queue,
            update_id=update_id,
            deadline=deadline,
            what="the subscription change",
        )
    except WorkflowUpdateFailedError as error:
        raise update_error(error, user_id, argument) from None


def subscription_deadline(settings: ApiSettings) -> Deadline:
    return Deadline.after(settings.subscription_update_wait_seconds)


def update_id_for(client_name: str, idempotency_key: str | None) -> str:
    """The client's key names the update (namespaced by client); else a fresh id."""
    return stable_id(client_name, idempotency_key) if idempotency_key else str(uuid.uuid4())


async def _change(
    *,
    user_id: uuid.UUID,
    key_name: str,
    idempotency_key: str | None,
    route: str,
    body: dict[str, Any],
    update: UpdateRef[SubscriptionWorkflowInput, ArgT, Any],
    argument: ArgT,
    settings: ApiSettings,
    pool: asyncpg.Pool,
    temporal: TemporalGateway,
) -> JSONResponse:
    uid = str(user_id)
    deadline = subscription_deadline(settings)

    async def handler() -> Answer:
        await require_active_user(pool, uid)
        update_id = update_id_for(key_name, idempotency_key)
        await run_update(temporal, settings, uid, update, argument, update_id, deadline)
        answer = await subscription_response(pool, uid)
        # Accepted, not done: the change waits for the customer's authentication.
        status = 202 if answer.payment_state == "requires_action" else 200
        return Answer(status, answer.model_dump(mode="json"))

    return await run_once(
        pool,
        client_name=key_name,
        key=idempotency_key,
        route=route,
        body={"user_id": uid, **body},
        handler=handler,
        deadline=deadline,
    )


IdempotencyKey = Annotated[str | None, Header()]


@router.get(
    "/{user_id}/subscription",
    summary="Tier, status, billing cycle and Stripe ids of a user's subscription",
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
async def get_subscription(user_id: uuid.UUID, _: ClientKey, pool: Pool) -> SubscriptionResponse:
    return await subscription_response(pool, str(user_id))


@router.post(
    "/{user_id}/subscription/upgrade",
    summary="Upgrade through Stripe (creates the customer and subscription if needed)",
    response_model=SubscriptionResponse,
    responses=PAYMENT_RESPONSES,
)
async def upgrade(
    user_id: uuid.UUID,
    body: UpgradeBody,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _change(
        user_id=user_id, key_name=key.name, idempotency_key=idempotency_key,
        route="POST /v1/users/{user_id}/subscription/upgrade", body=body.model_dump(),
        update=UPGRADE, argument=UpgradeRequest(**body.model_dump()),
        settings=settings, pool=pool, temporal=temporal,
    )  # fmt: skip


@router.post(
    "/{user_id}/subscription/downgrade",
    summary="Downgrade to a lower paid tier, or to free at the period end",
    response_model=SubscriptionResponse,
    responses=PAYMENT_RESPONSES,
)
async def downgrade(
    user_id: uuid.UUID,
    body: DowngradeBody,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _change(
        user_id=user_id, key_name=key.name, idempotency_key=idempotency_key,
        route="POST /v1/users/{user_id}/subscription/downgrade", body=body.model_dump(),
        update=DOWNGRADE, argument=DowngradeRequest(**body.model_dump()),
        settings=settings, pool=pool, temporal=temporal,
    )  # fmt: skip


@router.post(
    "/{user_id}/subscription/cancel",
    summary="Cancel at the period end (cancel_at_period_end=true)",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def cancel(
    user_id: uuid.UUID,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _change(
        user_id=user_id, key_name=key.name, idempotency_key=idempotency_key,
        route="POST /v1/users/{user_id}/subscription/cancel", body={},
        update=CANCEL, argument=EmptyRequest(),
        settings=settings, pool=pool, temporal=temporal,
    )  # fmt: skip


@router.post(
    "/{user_id}/subscription/reactivate",
    summary="Undo a cancellation before the period ends (cancel_at_period_end=false)",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def reactivate(
    user_id: uuid.UUID,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _change(
        user_id=user_id, key_name=key.name, idempotency_key=idempotency_key,
        route="POST /v1/users/{user_id}/subscription/reactivate", body={},
        update=REACTIVATE, argument=EmptyRequest(),
        settings=settings, pool=pool, temporal=temporal,
    )  # fmt: skip


@router.put(
    "/{user_id}/subscription/payment-method",
    summary="Attach a payment method and make it the subscription's default",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def update_payment_method(
    user_id: uuid.UUID,
    body: PaymentMethodBody,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _change(
        user_id=user_id, key_name=key.name, idempotency_key=idempotency_key,
        route="PUT /v1/users/{user_id}/subscription/payment-method", body=body.model_dump(),
        update=UPDATE_PAYMENT_METHOD,
        argument=PaymentMethodRequest(payment_method=body.payment_method),
        settings=settings, pool=pool, temporal=temporal,
    )  # fmt: skip


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
    uid = str(user_id)
    user = await require_active_user(pool, uid)
    if user.stripe_customer_id is None:
        return InvoiceList(data=[], has_more=False)
    rows = await invoices.list_invoices(pool, uid, limit=limit + 1, starting_after=starting_after)
    return InvoiceList(
        data=[InvoiceResponse.model_validate(row.model_dump()) for row in rows[:limit]],
        has_more=len(rows) > limit,
    )
