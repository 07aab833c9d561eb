"""Checkout (SPEC 3.3): start it, Stripe's return to it, and the setup status.

`POST /v1/checkout` does update-with-start on `checkout-<user>` and answers the
session's URL; the workflow is the only one that talks to Stripe. The status is read
from Postgres alone, so it answers while the flow runs, after it ended, and with the
worker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api import token_limits
from api.auth import ClientKey
from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, MALFORMED_BODY_RESPONSE, ApiError, ErrorResponse
from api.idempotency import Answer, run_once, stable_id
from api.temporal_gateway import TemporalUnavailable, WorkflowNotFound
from api.user_guard import require_active_user
from onramp import checkout
from onramp.checkout import SetupStatus
from onramp.repositories import billing, checkout_runs
from workflows import errors
from workflows.contracts.checkout import (
    CHECKOUT_RETURNED,
    START_CHECKOUT,
    CheckoutReturnSignal,
    CheckoutStarted,
    CheckoutWorkflowInput,
    StartCheckoutRequest,
    checkout_workflow_id,
)
from workflows.contracts.common import BillingCycle

router = APIRouter(tags=["checkout"], responses=ERROR_RESPONSES)

# A run that just decided (expired, payment failed) refuses new starts while it ends.
_CLOSING_RETRIES = 20


class CheckoutRequest(BaseModel):
    user_id: uuid.UUID
    tier: Literal["pro", "enterprise"]
    billing_cycle: BillingCycle = "monthly"


@router.post(
    "/v1/checkout",
    status_code=201,
    summary="Start (or resume) a user's checkout; answers the Checkout Session's URL",
    responses={
        201: {"model": CheckoutStarted},
        400: MALFORMED_BODY_RESPONSE,
        404: {"model": ErrorResponse, "description": "Unknown user"},
        409: {"model": ErrorResponse, "description": "A live subscription, or signing up"},
        502: {"model": ErrorResponse, "description": "Stripe failed; nothing was kept"},
        503: {
            "model": ErrorResponse,
            "description": "Temporal unreachable, or the checkout not created within "
            "CHECKOUT_WAIT_SECONDS (`operation_pending`: it goes on; retry with the same "
            "Idempotency-Key for its answer); with Retry-After",
        },
    },
)
async def start_checkout(
    request: CheckoutRequest,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    user_id = str(request.user_id)
    deadline = Deadline.after(settings.checkout_wait_seconds)
    update_id = (
        stable_id(key.name, f"checkout:{idempotency_key}") if idempotency_key else str(uuid.uuid4())
    )

    async def handler() -> Answer:
        await require_active_user(pool, user_id)
        blocking = await billing.blocking_subscription(pool, user_id)
        if blocking is not None:
            raise _subscription_exists(blocking)
        started = await _start(user_id, request, update_id, settings, temporal, deadline)
        return Answer(201, started.model_dump())

    return await run_once(
        pool,
        client_name=key.name,
        key=idempotency_key,
        route="POST /v1/checkout",
        body=request.model_dump(mode="json"),
        handler=handler,
        deadline=deadline,
    )


def _subscription_exists(status: str) -> ApiError:
    """A subscription that has not ended: a checkout would make a second one."""
    reason = checkout.blocking_reason(status)
    return ApiError(409, "subscription_exists", reason[0].upper() + reason[1:])


async def _start(
    user_id: str,
    request: CheckoutRequest,
    update_id: str,
    settings: Settings,
    temporal: Temporal,
    deadline: Deadline,
) -> CheckoutStarted:
    argument = StartCheckoutRequest(tier=request.tier, billing_cycle=request.billing_cycle)
    for _ in range(_CLOSING_RETRIES):
        try:
            return await temporal.update_with_start(
                START_CHECKOUT,
                argument,
                start_input=CheckoutWorkflowInput(user_id=user_id),
                workflow_id=checkout_workflow_id(user_id),
                user_id=user_id,
                task_queue=settings.temporal_task_queue,
                update_id=update_id,
                deadline=deadline,
                what="the checkout",
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == errors.CHECKOUT_CLOSED:
                await asyncio.sleep(min(0.25, deadline.remaining()))
                continue
            raise _update_error(cause) from None
    raise ApiError(409, "checkout_closing", "The previous checkout is ending; retry shortly")


def _update_error(cause: BaseException | None) -> ApiError:
    error_type = cause.type if isinstance(cause, ApplicationError) else None
    message = cause.message if isinstance(cause, ApplicationError) else "checkout failed"
    if error_type == errors.CHECKOUT_CONFLICT:
        return ApiError(409, "subscription_exists", message)
    if error_type == errors.USER_NOT_FOUND:
        return ApiError(404, "user_not_found", message)
    if error_type == errors.PRICE_NOT_CONFIGURED:
        return ApiError(503, "price_not_configured", message)
    return ApiError(502, "stripe_error", f"{message}; nothing was kept, try again")


@router.get(
    "/v1/checkout/return",
    status_code=303,
    summary="Stripe's success_url: re-read the session now, then go to the success page",
    responses={
        303: {"description": "To the platform's success page"},
        404: {"model": ErrorResponse},
        429: token_limits.RATE_LIMITED_RESPONSE,
    },
)
async def checkout_return(
    request: Request,
    session_id: Annotated[str, Query(min_length=3, max_length=255, pattern=r"^cs_\w+$")],
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
) -> RedirectResponse:
    token_limits.check(request, "checkout_return", session_id)
    user_id = await checkout_runs.user_of_session(pool, session_id)
    if user_id is None:
        raise ApiError(404, "checkout_not_found", "No checkout has this session")
    target = settings.checkout_success_url or f"{settings.onramp_public_url}/"
    # One re-read per session every few seconds: a reload storm costs no Stripe calls
    # and no history beyond that (the workflow also re-reads on its own timer).
    if not token_limits.reread_due(request, session_id, settings.checkout_return_reread_seconds):
        return RedirectResponse(target, status_code=303)
    # An ended checkout has nothing to re-read; an unreachable Temporal is caught up by
    # the workflow's own reconciliation. Either way the user moves on.
    with contextlib.suppress(WorkflowNotFound, TemporalUnavailable):
        await temporal.signal(
            CHECKOUT_RETURNED,
            CheckoutReturnSignal(session_id=session_id),
            workflow_id=checkout_workflow_id(user_id),
        )
    return RedirectResponse(target, status_code=303)


class SetupStatusResponse(BaseModel):
    user_id: str
    payment_state: Literal["unpaid", "confirming", "paid"]
    provisioning_state: Literal["not_started", "queued", "running", "completed", "failed"]
    password_state: Literal["not_sent", "sent", "set"]
    next_action: Literal["pay", "wait_provisioning", "set_password", "go_to_dashboard"]
    workflow_id: str | None
    attempt: int | None
    checkout_session_id: str | None
    tier: str | None
    billing_cycle: str | None
    created_at: str | None
    updated_at: str | None
    paid_at: str | None
    provisioned_at: str | None
    email_sent_at: str | None
    password_set_at: str | None


def _response(status: SetupStatus) -> SetupStatusResponse:
    values = status.model_dump(mode="json")
    return SetupStatusResponse.model_validate(values)


@router.get(
    "/v1/users/{user_id}/setup-status",
    summary="Payment, provisioning and password state of the user's checkout (Postgres)",
    responses={404: {"model": ErrorResponse}},
)
async def setup_status(user_id: uuid.UUID, _: ClientKey, pool: Pool) -> SetupStatusResponse:
    status = await checkout.setup_status(pool, str(user_id))
    if status is None:
        raise ApiError(404, "user_not_found", f"No user {user_id}")
    return _response(status)
