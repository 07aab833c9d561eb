"""The end user's side of Connect onboarding; no API key, the token or the
state authorises.

- `GET /v1/onboard?token=…`: an update creates a fresh account link; 303 to Stripe (or
  `{url}` for JSON clients). A fresh stored link is handed out again without Temporal.
- `GET /v1/connect/refresh|return?state=…`: Stripe's redirects back to the service.

The API never calls Stripe: it reads Postgres and talks to Temporal.
"""

from __future__ import annotations

import html
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from api import token_limits
from api.deps import Pool, Settings, Temporal
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError, ErrorResponse
from api.operations import update_onboarding
from onramp import tokens
from onramp.repositories import onboarding_tokens
from onramp.repositories.onboarding_tokens import FoundToken
from workflows.contracts.onboarding import (
    ONBOARDING_RETURNED,
    OPEN_ONBOARDING_LINK,
    OnboardingReturnedInput,
    OpenOnboardingLinkInput,
)

router = APIRouter(tags=["onboarding"])

_GONE = ("expired", "revoked", "completed")
RATE_LIMITED = token_limits.RATE_LIMITED_RESPONSE

# The `state` of Stripe's redirects is a derived token (base64url, tokens.derive_token).
_STATE = Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")


class OnboardingLinkResponse(BaseModel):
    url: str


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# A stored account link is handed out again while it has this long left (Stripe's links
# last about five minutes); the workflow applies the same margin (LINK_REUSE_MARGIN).
LINK_REUSE_SECONDS = 60.0


def _link_response(request: Request, url: str) -> Response:
    if _wants_json(request):
        return JSONResponse(OnboardingLinkResponse(url=url).model_dump())
    return RedirectResponse(url, status_code=303)


def _stored_link(found: FoundToken, settings: Settings) -> str | None:
    """The token's last account link, unsealed, while it is fresh enough to reuse: a
    repeated open then costs one Postgres read, no Stripe call and no history."""
    if (
        found.status != "in_progress"
        or found.link_sealed is None
        or found.link_fresh_seconds is None
        or found.link_fresh_seconds < LINK_REUSE_SECONDS
    ):
        return None
    return tokens.unseal(settings.onramp_token_secret, found.token_id, found.link_sealed)


async def _open_link(
    found: FoundToken,
    request: Request,
    settings: Settings,
    temporal: Temporal,
    *,
    new_link: bool = False,
) -> Response:
    result = await update_onboarding(
        temporal,
        settings,
        OPEN_ONBOARDING_LINK,
        OpenOnboardingLinkInput(
            token_id=found.token_id, public_url=settings.onramp_public_url, new_link=new_link
        ),
        # Each open is its own operation (and Stripe idempotency key).
        user_id=found.user_id,
        update_id=f"open/{uuid.uuid4()}",
    )
    url = tokens.unseal_text(settings.onramp_token_secret, found.token_id, result.sealed_url)
    if url is None:
        # Sealed under another ONRAMP_TOKEN_SECRET (a rotation mid-flight): ask again.
        raise ApiError(
            503,
            "onboarding_busy",
            "Onboarding link not ready; try again",
            headers={"Retry-After": "2"},
        )
    return _link_response(request, url)


@router.get(
    "/v1/onboard",
    summary="The end user's onboarding link: 303 to a fresh Stripe account link",
    responses={
        303: {"description": "Redirect to Stripe's hosted onboarding"},
        200: {"model": OnboardingLinkResponse, "description": "With Accept: application/json"},
        404: {"model": ErrorResponse, "description": "Unknown token"},
        410: {"model": ErrorResponse, "description": "Expired, revoked or completed"},
        422: VALIDATION_ERROR_RESPONSE,
        502: {"model": ErrorResponse, "description": "Stripe failed; the link still works"},
        503: {"model": ErrorResponse, "description": "Busy or Temporal unreachable; retry"},
        429: RATE_LIMITED,
    },
)
async def open_onboarding_link(
    request: Request,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    token: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    token_limits.check(request, "onboard", token)
    found = await onboarding_tokens.find_by_hash(pool, tokens.hash_token(token))
    if found is None:
        raise ApiError(404, "token_not_found", "Unknown onboarding link")
    if found.status in _GONE or found.expired_by_clock:
        status = found.status if found.status in _GONE else "expired"
        raise ApiError(410, "token_gone", f"This onboarding link is {status}")
    stored = _stored_link(found, settings)
    if stored is not None:
        return _link_response(request, stored)
    return await _open_link(found, request, settings, temporal)


async def _by_state(pool: Pool, state: str) -> FoundToken:
    # Postgres keeps only the state's digest.
    found = await onboarding_tokens.find_by_state_hash(pool, tokens.hash_token(state))
    if found is None:
        raise ApiError(400, "invalid_state", "Unknown onboarding state")
    if found.status in ("expired", "revoked") or found.expired_by_clock:
        raise ApiError(400, "invalid_state", "This onboarding session has expired")
    return found


@router.get(
    "/v1/connect/refresh",
    summary="Stripe's refresh_url: a fresh account link for the same onboarding",
    responses={
        303: {"description": "Redirect to Stripe's hosted onboarding"},
        200: {"model": OnboardingLinkResponse, "description": "With Accept: application/json"},
        400: {"model": ErrorResponse, "description": "Unknown, expired or completed state"},
        404: {"model": ErrorResponse, "description": "The token is gone from its workflow"},
        410: {"model": ErrorResponse, "description": "The token was revoked meanwhile"},
        422: VALIDATION_ERROR_RESPONSE,
        502: {"model": ErrorResponse, "description": "Stripe failed; the link still works"},
        503: {"model": ErrorResponse, "description": "Busy or Temporal unreachable; retry"},
        429: RATE_LIMITED,
    },
)
async def connect_refresh(
    request: Request,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    state: Annotated[str, _STATE],
) -> Response:
    token_limits.check(request, "connect_refresh", state)
    found = await _by_state(pool, state)
    if found.status == "completed":
        raise ApiError(400, "invalid_state", "This onboarding is already complete")
    # Stripe sends the user here when the last link was visited or expired: a new one.
    return await _open_link(found, request, settings, temporal, new_link=True)


@router.get(
    "/v1/connect/return",
    summary="Stripe's return_url: the workflow re-reads the account, then a thanks page",
    responses={
        303: {"description": "To the platform's page (ONBOARDING_RETURN_URL)"},
        200: {
            "description": "A thanks page, or `{user_id, onboarding_complete}` for JSON clients",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        400: {"model": ErrorResponse, "description": "Unknown or expired state"},
        404: {"model": ErrorResponse, "description": "The token is gone from its workflow"},
        410: {"model": ErrorResponse, "description": "The token was revoked meanwhile"},
        422: VALIDATION_ERROR_RESPONSE,
        429: RATE_LIMITED,
    },
)
async def connect_return(
    request: Request,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    state: Annotated[str, _STATE],
) -> Response:
    token_limits.check(request, "connect_return", state)
    found = await _by_state(pool, state)
    # A completed onboarding has nothing left to re-read: its state starts no run.
    complete = found.status == "completed" or await _asked_to_reread(found, settings, temporal)
    if settings.onboarding_return_url:
        return RedirectResponse(settings.onboarding_return_url, status_code=303)
    if _wants_json(request):
        return JSONResponse({"user_id": found.user_id, "onboarding_complete": complete})
    message = (
        "Your account is set up. You can close this page."
        if complete
        else "Thanks! Stripe is still reviewing your details; we will let you know."
    )
    return HTMLResponse(
        f"<!doctype html><title>Onboarding</title><h1>Thank you</h1><p>{html.escape(message)}</p>"
    )


async def _asked_to_reread(found: FoundToken, settings: Settings, temporal: Temporal) -> bool:
    """Ask the workflow to re-read the account now; True when it found it complete."""
    try:
        status = await update_onboarding(
            temporal,
            settings,
            ONBOARDING_RETURNED,
            OnboardingReturnedInput(token_id=found.token_id),
            user_id=found.user_id,
            update_id=f"return/{uuid.uuid4()}",
        )
    except ApiError as error:
        # The user is done with Stripe either way; polling and webhooks catch up.
        if error.status not in (502, 503):
            raise
        return False
    snapshot = status.last_snapshot
    return snapshot is not None and snapshot.onboarding_complete
