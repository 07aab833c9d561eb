"""`/v1/portal/set-password/resend`: a fresh set-password link, asked for by a person.

By email, by a link that no longer works (its token) or by the status page's view
token, as JSON or a form. The answer never says whether the address or the user exists,
needs a password or was just sent one: always 202 (`{"status": "accepted"}`, or a page),
and its timing does not depend on it either, because the work starts after the answer
(a background task). The API sends nothing itself: it starts `password-link-<user>`,
which decides from Postgres whether to send (a paid checkout, no password yet), replaces
the user's earlier links and sends the email through the email activity.

Two limits, in memory like api/token_limits.py: per client address (429, which says
nothing about any account), and per account, a few links an hour; past that the answer
is the same 202 and nothing is sent, so the second limit reveals nothing either.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, model_validator

from api import token_limits
from api.deps import Pool, Settings, Temporal
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError
from api.input_text import normalize_email_address
from api.pages.actions import Action
from api.pages.negotiation import wants_html
from api.pages.render import dashboard_url, render_page
from api.routes.portal import RESEND, submitted_fields, validated
from api.temporal_gateway import Operation, TemporalGateway
from onramp.logging import log_event
from onramp.passwords import SET_PASSWORD
from onramp.repositories import password_tokens, users
from onramp.settings import ApiSettings
from onramp.tokens import hash_token
from onramp.view_tokens import MAX_VIEW_TOKEN_LENGTH, verify_view_token
from workflows.contracts.password_link import (
    PASSWORD_LINK,
    PasswordLinkInput,
    password_link_workflow_id,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/portal", tags=["portal"])

# Per client address, a minute: enough for a person who mistyped an address a few
# times, too few to mail a list of addresses.
RESEND_PER_CLIENT_PER_MINUTE = 10
# Per account, an hour: the links sent, however the account was named.
RESEND_PER_ACCOUNT_PER_HOUR = 3
_HOUR = 3600.0

_SENT = "If an account needs a password, we sent a new link to its address."


class ResendRequest(BaseModel):
    """One of: the account's email, a set-password link's token, a status-page view token."""

    email: str | None = Field(default=None, min_length=3, max_length=254)
    token: str | None = Field(
        default=None, min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$"
    )
    view: str | None = Field(default=None, min_length=1, max_length=MAX_VIEW_TOKEN_LENGTH)

    @model_validator(mode="after")
    def _one_of(self) -> ResendRequest:
        given = [name for name in ("email", "token", "view") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give one of email, token or view")
        return self


class ResendAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class RecentSends:
    """When each key was let through within `window` seconds, bounded in size."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: OrderedDict[str, list[float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def allow(self, key: str, limit: int, window: float) -> bool:
        """True (and counted) while `key` was let through fewer than `limit` times."""
        now = self._clock()
        times = [at for at in self._seen.pop(key, []) if now - at < window]
        allowed = len(times) < limit
        if allowed:
            times.append(now)
        self._seen[key] = times
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)
        return allowed


def _limits(request: Request) -> tuple[token_limits.WindowCounter, RecentSends]:
    state = request.app.state
    if getattr(state, "resend_limits", None) is None:
        state.resend_limits = (token_limits.WindowCounter(), RecentSends())
    limits: tuple[token_limits.WindowCounter, RecentSends] = state.resend_limits
    return limits


async def _user_of(pool: Pool, settings: ApiSettings, asked: ResendRequest) -> str | None:
    """The account the request names, if any (never told to the requester)."""
    if asked.email is not None:
        try:
            address = normalize_email_address(asked.email)
        except ValueError:
            return None
        user = await users.get_user_by_email(pool, address)
        return user.user_id if user is not None else None
    if asked.token is not None:
        found = await password_tokens.find_by_hash(
            pool, token_hash=hash_token(asked.token), purpose=SET_PASSWORD
        )
        return found.user_id if found is not None else None
    assert asked.view is not None
    claims = verify_view_token(settings.onramp_token_secret, asked.view, now=time.time())
    return claims.user_id if claims is not None else None


async def _start_sending(temporal: TemporalGateway, settings: ApiSettings, user_id: str) -> None:
    """Start `password-link-<user>`, or join its open run; after the answer was sent."""
    try:
        await temporal.start_workflow(
            PASSWORD_LINK,
            PasswordLinkInput(user_id=user_id),
            workflow_id=password_link_workflow_id(user_id),
            user_id=user_id,
            task_queue=settings.temporal_task_queue,
            deadline=temporal.quick_deadline(),
            operation=Operation("sending a set-password link"),
        )
    except ApiError as error:
        # The person was answered already; the log says why no link went out.
        log_event(
            logger,
            "PASSWORD_LINK_NOT_STARTED",
            level=logging.WARNING,
            user_id=user_id,
            code=error.code,
        )


@router.get(
    "/set-password/resend",
    response_class=HTMLResponse,
    summary="The page that asks for an email address to send a new set-password link to",
)
async def resend_page(request: Request) -> HTMLResponse:
    return render_page(request, "set_password_resend.html", title="Get a new link", action=RESEND)


@router.post(
    "/set-password/resend",
    status_code=202,
    response_model=ResendAccepted,
    summary="Send a fresh set-password link (by email, expired link or view token)",
    description="Always 202 whether or not the account exists or needs a password; a "
    "browser gets a page saying so. JSON or urlencoded form fields.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": ResendRequest.model_json_schema()}
                for media in ("application/json", "application/x-www-form-urlencoded")
            },
        }
    },
    responses={429: token_limits.RATE_LIMITED_RESPONSE, 422: VALIDATION_ERROR_RESPONSE},
)
async def resend_link(
    request: Request,
    background: BackgroundTasks,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
) -> Response:
    data, _ = await submitted_fields(request)
    asked = validated(ResendRequest, {name: value for name, value in data.items() if value})
    per_client, per_account = _limits(request)
    wait = per_client.hit(
        f"resend:{token_limits.client_address(request)}", RESEND_PER_CLIENT_PER_MINUTE
    )
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests from this address; try again shortly",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user_id = await _user_of(pool, settings, asked)
    # Counted per account whichever way it was named; the work starts after the answer
    # (FastAPI runs `background` once the response is sent).
    if user_id is not None and per_account.allow(user_id, RESEND_PER_ACCOUNT_PER_HOUR, _HOUR):
        background.add_task(_start_sending, temporal, settings, user_id)
    if wants_html(request):
        back = Action(f"Back to {settings.platform_name}", dashboard_url(settings))
        return render_page(
            request,
            "message.html",
            title="Check your email",
            status=202,
            message=_SENT,
            detail="The link works once. Links sent earlier no longer work.",
            code="accepted",
            actions=[back],
        )
    return JSONResponse(ResendAccepted().model_dump(), status_code=202)
