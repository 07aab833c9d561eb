"""The end user's side of Connect onboarding; no API key, the token or the
state authorises.

- `GET /v1/onboard?token=…`: an update creates a fresh account link; 303 to Stripe (or
  `{url}` for JSON clients). A fresh stored link is handed out again without Temporal.
- `GET /v1/connect/refresh|return?state=…`: Stripe's redirects back to the service.

A person's browser gets pages (docs/PAGES.md): the return page says in words what
Stripe still needs, or that onboarding is complete; refresh answers "Preparing your
secure Stripe link…" at once and continues by itself (a meta refresh, no script) to the
request that waits for the new link; a used, expired, revoked or unknown link is a page
with its status and the way back to the platform. Programs get the JSON they always got.

The API never calls Stripe: it reads Postgres and talks to Temporal.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from api import token_limits
from api.deps import Pool, Settings, Temporal
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError, ErrorResponse
from api.operations import update_onboarding
from api.pages.negotiation import answers_a_person, wants_html
from api.pages.render import render_page
from onramp import requirements, tokens
from onramp.repositories import connect_account_status, onboarding_tokens
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
# Set by the "Preparing…" page's own refresh: now make the link (and wait for Stripe).
_GO = Query(description="Make the link now (the preparing page continues here)")


class OnboardingLinkResponse(BaseModel):
    url: str


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# A stored account link is handed out again while it has this long left (Stripe's links
# last about five minutes); the workflow applies the same margin (LINK_REUSE_MARGIN).
LINK_REUSE_SECONDS = 60.0


class LinkRefused(ApiError):
    """A link or state that cannot be used; `reason` picks what a person reads
    (`_REFUSALS`), the status and code stay those of the JSON answer."""

    def __init__(self, status: int, code: str, message: str, reason: str) -> None:
        super().__init__(status, code, message)
        self.reason = reason


# What a person reads about a link that cannot be used: title, what happened, what to
# do next. `{platform}` is PLATFORM_NAME: only the platform can issue a new link.
_REFUSALS: dict[str, tuple[str, str, str]] = {
    "unknown": (
        "We do not recognise this link",
        "This onboarding link is not one we know; part of it may be missing.",
        "Open the whole link from the message {platform} sent you, or ask {platform} for "
        "a new link.",
    ),
    "expired": (
        "This link has expired",
        "Onboarding links last a limited time, and this one has run out. What you already "
        "gave Stripe is kept.",
        "Ask {platform} for a new onboarding link to carry on.",
    ),
    "revoked": (
        "This link has been replaced",
        "{platform} made a newer onboarding link, which replaces this one.",
        "Use the newest link {platform} sent you, or ask {platform} for a new one.",
    ),
    "completed": (
        "Onboarding is already complete",
        "Your Stripe account was set up with this link: there is nothing left to do here.",
        "You can go back to {platform}.",
    ),
    "gone": (
        "This link is no longer valid",
        "This onboarding link can no longer be used.",
        "Ask {platform} for a new onboarding link to carry on.",
    ),
    "session": (
        "This onboarding session has expired",
        "The link that brought you back from Stripe can no longer be used.",
        "Ask {platform} for a new onboarding link to carry on where you left off.",
    ),
}
# Refusals that reach a route from the workflow (a race with expiry or revocation).
_REASONS_BY_CODE = {"token_not_found": "unknown", "token_gone": "gone", "invalid_state": "session"}


def _refused(request: Request, error: ApiError) -> Response:
    """A refused link as a page for a person; anything else (and any refusal for a
    program) is raised again, to be answered by the one error shape."""
    reason = getattr(error, "reason", None) or _REASONS_BY_CODE.get(error.code)
    if reason is None or not answers_a_person(request):
        raise error
    platform = request.app.state.settings.platform_name
    title, happened, next_step = (part.format(platform=platform) for part in _REFUSALS[reason])
    return render_page(
        request,
        "onboarding_link_error.html",
        title=title,
        status=error.status,
        message=happened,
        next_step=next_step,
        code=error.code,
    )


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


_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}


@router.get(
    "/v1/onboard",
    summary="The end user's onboarding link: 303 to a fresh Stripe account link",
    responses={
        303: {"description": "Redirect to Stripe's hosted onboarding"},
        200: {"model": OnboardingLinkResponse, "description": "With Accept: application/json"},
        404: {"model": ErrorResponse, "description": "Unknown token (a page for a browser)"},
        410: {"model": ErrorResponse, "description": "Expired, revoked or completed (a page)"},
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
    try:
        found = await onboarding_tokens.find_by_hash(pool, tokens.hash_token(token))
        if found is None:
            raise LinkRefused(404, "token_not_found", "Unknown onboarding link", "unknown")
        if found.status in _GONE or found.expired_by_clock:
            status = found.status if found.status in _GONE else "expired"
            raise LinkRefused(410, "token_gone", f"This onboarding link is {status}", status)
        stored = _stored_link(found, settings)
        if stored is not None:
            return _link_response(request, stored)
        return await _open_link(found, request, settings, temporal)
    except ApiError as error:
        return _refused(request, error)


async def _by_state(pool: Pool, state: str) -> FoundToken:
    # Postgres keeps only the state's digest.
    found = await onboarding_tokens.find_by_state_hash(pool, tokens.hash_token(state))
    if found is None:
        raise LinkRefused(400, "invalid_state", "Unknown onboarding state", "unknown")
    if found.status in ("expired", "revoked") or found.expired_by_clock:
        raise LinkRefused(400, "invalid_state", "This onboarding session has expired", "session")
    return found


@router.get(
    "/v1/connect/refresh",
    summary="Stripe's refresh_url: a fresh account link for the same onboarding",
    responses={
        303: {"description": "Redirect to Stripe's hosted onboarding"},
        200: {
            "model": OnboardingLinkResponse,
            "description": "With Accept: application/json; a browser first gets a page "
            "that continues by itself (`go=true`) while the link is made",
            **_PAGE,
        },
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
    go: Annotated[bool, _GO] = False,
) -> Response:
    token_limits.check(request, "connect_refresh", state)
    try:
        found = await _by_state(pool, state)
        if found.status == "completed":
            raise LinkRefused(
                400, "invalid_state", "This onboarding is already complete", "completed"
            )
        if wants_html(request) and not go:
            # A page at once instead of a browser hanging on a redirect that waits for
            # Stripe; its meta refresh continues to the request that makes the link.
            onward = f"/v1/connect/refresh?{urlencode({'state': state, 'go': 'true'})}"
            return render_page(
                request,
                "onboarding_preparing.html",
                title="Preparing your secure Stripe link…",
                onward=onward,
            )
        # Stripe sends the user here when the last link was visited or expired: a new one.
        return await _open_link(found, request, settings, temporal, new_link=True)
    except ApiError as error:
        return _refused(request, error)


@router.get(
    "/v1/connect/return",
    summary="Stripe's return_url: the workflow re-reads the account, then a thanks page",
    responses={
        303: {"description": "To the platform's page (ONBOARDING_RETURN_URL)"},
        200: {
            "description": "A page saying what Stripe still needs (or that onboarding is "
            "complete), or `{user_id, onboarding_complete}` for JSON clients",
            **_PAGE,
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
    try:
        found = await _by_state(pool, state)
        # A completed onboarding has nothing left to re-read: its state starts no run.
        complete = found.status == "completed" or await _asked_to_reread(found, settings, temporal)
    except ApiError as error:
        return _refused(request, error)
    if settings.onboarding_return_url:
        return RedirectResponse(settings.onboarding_return_url, status_code=303)
    if _wants_json(request):
        return JSONResponse({"user_id": found.user_id, "onboarding_complete": complete})
    return await _return_page(request, pool, found.user_id, state, complete=complete)


async def _return_page(
    request: Request, pool: Pool, user_id: str, state: str, *, complete: bool
) -> Response:
    """What Stripe still needs, in words, from the mirror the re-read just wrote (or
    the last one, when Stripe or Temporal could not answer now)."""
    status = await connect_account_status.get_status(pool, user_id)
    complete = complete or (status is not None and status.onboarding_completed_at is not None)
    due = [] if complete or status is None else requirements.describe_all(status.requirements_due)
    if complete:
        title = "Onboarding is complete"
    elif due:
        title = "Stripe needs a few more details"
    else:
        title = "Stripe is checking your details"
    return render_page(
        request,
        "onboarding_return.html",
        title=title,
        complete=complete,
        due=due,
        # The same token's way back to Stripe: refresh makes a new link for it.
        continue_url=f"/v1/connect/refresh?{urlencode({'state': state})}",
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
