"""Connect onboarding for the platform, with the client key.

- `POST /v1/users/{id}/onboarding`: a new token, issued by the workflow
  `onboarding-<user>` through update-with-start; the API derives the token from the id.
- `GET /v1/users/{id}/onboarding`: the status, from Postgres only.

The end user's link and Stripe's redirects are in `api/routes/onboarding_links.py`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import ClientKey
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from api.idempotency import Idempotency
from api.operations import update_onboarding
from api.user_guard import ActiveUser
from onramp import onboarding, tokens
from workflows.contracts.onboarding import (
    ISSUE_ONBOARDING_TOKEN,
    IssueOnboardingTokenInput,
    OnboardingTokenStatus,
)

router = APIRouter(tags=["onboarding"])


class OnboardingTokenResponse(BaseModel):
    token: str
    url: str
    expires_at: datetime


class OnboardingStatusResponse(BaseModel):
    user_id: str
    connect_account_id: str | None
    token_status: OnboardingTokenStatus | None
    token_created_at: datetime | None
    token_expires_at: datetime | None
    started_at: datetime | None
    returned_at: datetime | None
    completed_at: datetime | None
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None
    updated_at: datetime | None


@router.post(
    "/v1/users/{user_id}/onboarding",
    status_code=201,
    summary="Issue a Connect onboarding link for a user (revokes the previous unused one)",
    responses={
        **ERROR_RESPONSES,
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "The user is still signing up"},
        502: {"model": ErrorResponse, "description": "Stripe failed; try again"},
        503: {"model": ErrorResponse},
    },
)
async def create_onboarding_token(
    key: ClientKey,
    user: ActiveUser,
    settings: Settings,
    temporal: Temporal,
    idempotency: Idempotency,
) -> OnboardingTokenResponse:
    # With an Idempotency-Key, a retried request names the same token (and update).
    token_id = (
        idempotency.id_for(f"{key.name}/onboarding/{user.user_id}")
        if idempotency.key
        else tokens.new_token_id()
    )
    result = await update_onboarding(
        temporal,
        settings,
        ISSUE_ONBOARDING_TOKEN,
        IssueOnboardingTokenInput(
            token_id=token_id,
            ttl_seconds=settings.onboarding_token_ttl_seconds,
            poll_seconds=settings.onboarding_poll_seconds,
        ),
        user_id=user.user_id,
        update_id=f"issue/{token_id}",
    )
    token = tokens.derive_token(
        settings.onramp_token_secret, tokens.CONNECT_ONBOARDING, result.token_id
    )
    return OnboardingTokenResponse(
        token=token,
        url=f"{settings.onramp_public_url}/v1/onboard?token={token}",
        expires_at=result.expires_at,
    )


@router.get(
    "/v1/users/{user_id}/onboarding",
    summary="Onboarding status: token status, account flags, requirements due",
    responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse}},
)
async def get_onboarding_status(
    user_id: uuid.UUID, _: ClientKey, pool: Pool
) -> OnboardingStatusResponse:
    view = await onboarding.onboarding_view(pool, str(user_id))
    if view is None:
        raise ApiError(404, "user_not_found", f"No user {user_id}")
    # The view as stored, but for the token's id (never shown) and one renamed field.
    return OnboardingStatusResponse.model_validate(
        view.model_dump() | {"updated_at": view.status_updated_at}
    )
