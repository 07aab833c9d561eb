"""Checkout: start it, Stripe's return to it, and the setup status.

`POST /v1/checkout` does update-with-start on `checkout-<user>` and answers the
session's URL; the workflow is the only one that talks to Stripe. The status is read
from Postgres alone, so it answers while the flow runs, after it ended, and with the
worker down.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from api import token_limits
from api.auth import ClientKey
from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from api.idempotency import Answer, Idempotency
from api.operations import start_checkout as start_checkout_workflow
from api.temporal_gateway import TemporalUnavailable, WorkflowNotFound
from api.user_guard import require_active_user
from onramp import checkout, tracing
from onramp.checkout import SetupStatus
from onramp.repositories import billing, checkout_runs, users
from onramp.settings import ApiSettings
from onramp.view_tokens import VIEW_TOKEN_TTL_SECONDS, issue_view_token
from workflows.contracts.checkout import (
    CHECKOUT_RETURNED,
    CheckoutReturnSignal,
    CheckoutStarted,
    StartCheckoutRequest,
    checkout_workflow_id,
)
from workflows.contracts.common import BillingCycle

router = APIRouter(tags=["checkout"], responses=ERROR_RESPONSES)


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
        400: {
            "model": ErrorResponse,
            "description": "No price configured for this tier and cycle, or a body that "
            "is not UTF-8",
        },
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
    idempotency: Idempotency,
) -> Any:
    user_id = str(request.user_id)
    deadline = Deadline.after(settings.checkout_wait_seconds)
    update_id = idempotency.id_for(key.name, "checkout:")

    async def handler() -> Answer:
        # The user is named in the body, not the path: checked inside the handler.
        await require_active_user(pool, user_id)
        blocking = await billing.blocking_subscription(pool, user_id)
        if blocking is not None:
            raise _subscription_exists(blocking)
        # The checkout, and all its workflow does, continues the user's signup trace.
        journey = await users.traceparent_of(pool, user_id) if tracing.enabled() else None
        with tracing.continue_journey(journey, "journey.checkout", user_id=user_id):
            started = await start_checkout_workflow(
                temporal,
                settings,
                StartCheckoutRequest(tier=request.tier, billing_cycle=request.billing_cycle),
                user_id=user_id,
                update_id=update_id,
                deadline=deadline,
            )
        return Answer(201, started.model_dump())

    return await idempotency.run(key.name, request.model_dump(mode="json"), deadline, handler)


def _subscription_exists(status: str) -> ApiError:
    """A subscription that has not ended: a checkout would make a second one."""
    reason = checkout.blocking_reason(status)
    return ApiError(409, "subscription_exists", reason[0].upper() + reason[1:])


@router.get(
    "/v1/checkout/return",
    status_code=303,
    summary="Stripe's success_url: re-read the session now, then go to the status page "
    "(or the platform's CHECKOUT_SUCCESS_URL)",
    responses={
        303: {
            "description": "To the hosted status page with a fresh view token, or to "
            "CHECKOUT_SUCCESS_URL when the platform configured one"
        },
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
    target = RedirectResponse(_after_return(settings, user_id, session_id), status_code=303)
    # One re-read per session every few seconds: a reload storm costs no Stripe calls
    # and no history beyond that (the workflow also re-reads on its own timer).
    if not token_limits.reread_due(request, session_id, settings.checkout_return_reread_seconds):
        return target
    # An ended checkout has nothing to re-read; an unreachable Temporal is caught up by
    # the workflow's own reconciliation. Either way the user moves on.
    with contextlib.suppress(WorkflowNotFound, TemporalUnavailable):
        await temporal.signal(
            CHECKOUT_RETURNED,
            CheckoutReturnSignal(session_id=session_id),
            workflow_id=checkout_workflow_id(user_id),
        )
    return target


def _after_return(settings: ApiSettings, user_id: str, session_id: str) -> str:
    """The platform's success page, else our status page with a token for this session."""
    if settings.checkout_success_url:
        return settings.checkout_success_url
    token = issue_view_token(
        settings.onramp_token_secret,
        user_id=user_id,
        session_id=session_id,
        now=time.time(),
        ttl_seconds=VIEW_TOKEN_TTL_SECONDS,
    )
    # Relative: the browser stays on the host that Stripe sent it back to.
    return f"/v1/checkout/status-page?{urlencode({'view': token})}"


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
    tenant_id: str | None = Field(
        default=None, description="the platform's tenant made by the provisioning hook"
    )
    dashboard_url: str | None = Field(
        default=None, description="the tenant's dashboard, as the provisioning hook answered"
    )


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
