"""The set-password page, its form's target and its strength hint, answered by the API
alone.

No API key: the token authorises. The token is hashed to find its row (Postgres keeps
only sha256(token)); the password is rated by `onramp.passwords.password_strength`
(zxcvbn, with the user's own email and username counted as guessable), hashed with
argon2id in a thread and stored in one transaction with the token's use and
`password_state=set`. Neither the token nor the password reaches Temporal, a log or the
database in the clear.

The form works without JavaScript (a urlencoded POST: 303 to the dashboard, or the page
again with the error inline); with it, the page's script posts JSON and follows the
same answers as any API client (204, or the JSON error shape). A link that no longer
works answers a page saying so, with "Email me a new link" (api/routes/password_links.py).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError

from api import token_limits
from api.deps import Pool
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError, ErrorResponse, json_error_response
from api.pages.actions import Action
from api.pages.negotiation import wants_html
from api.pages.render import dashboard_url, render_page
from onramp import checkout
from onramp.checkout import SetPasswordOutcome
from onramp.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    SET_PASSWORD,
    PasswordStrength,
    hash_password,
    password_strength,
    weakness_message,
)
from onramp.repositories import password_tokens, users
from onramp.repositories.password_tokens import PasswordTokenRow
from onramp.tokens import hash_token

router = APIRouter(prefix="/v1/portal", tags=["portal"])

_TOKEN_PATTERN = r"^[A-Za-z0-9_\-]+$"  # noqa: S105 - a pattern, not a secret
_TOKEN = Field(min_length=16, max_length=128, pattern=_TOKEN_PATTERN)
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{16,128}")
_FORM = "application/x-www-form-urlencoded"

ACTION = "/v1/portal/set-password"
RESEND = "/v1/portal/set-password/resend"
STRENGTH = "/v1/portal/password-strength"

ModelT = TypeVar("ModelT", bound=BaseModel)


class SetPasswordRequest(BaseModel):
    token: str = _TOKEN
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


class StrengthRequest(BaseModel):
    token: str = _TOKEN
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


# Both bodies the set-password route reads, for the OpenAPI document.
_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SetPasswordRequest.model_json_schema()},
            _FORM: {"schema": SetPasswordRequest.model_json_schema()},
        },
    }
}
_LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    410: {"model": ErrorResponse, "description": "Expired, used or replaced link"},
    422: VALIDATION_ERROR_RESPONSE,
}


def _gone(found: PasswordTokenRow, token: str) -> ApiError:
    if found.state == "used":
        message = "This link was already used to set a password."
    elif found.state == "revoked":
        message = "A newer link was sent to you; this one no longer works."
    else:
        message = "This link has expired."
    resend = Action("Email me a new link", RESEND, method="post", fields=(("token", token),))
    return ApiError(410, "token_gone", message, actions=[resend])


def _unknown(status: int) -> ApiError:
    resend = Action("Email me a new link", RESEND)
    return ApiError(status, "invalid_token", "This link is not valid", actions=[resend])


async def _usable_token(pool: Pool, token: str, *, unknown_status: int) -> PasswordTokenRow:
    found = await password_tokens.find_by_hash(
        pool, token_hash=hash_token(token), purpose=SET_PASSWORD
    )
    if found is None:
        raise _unknown(unknown_status)
    if not found.usable:
        raise _gone(found, token)
    return found


async def _strength(pool: Pool, found: PasswordTokenRow, password: str) -> PasswordStrength:
    user = await users.get_user(pool, found.user_id)
    personal = (user.email, user.username) if user is not None else ()
    return password_strength(password, personal)


def _page(
    request: Request, token: str, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    return render_page(
        request,
        "set_password.html",
        title="Set your password",
        status=status,
        script="set_password.js",
        token=token,
        error=error,
        min_length=MIN_PASSWORD_LENGTH,
        action=ACTION,
        strength_url=STRENGTH,
    )


@router.get(
    "/set-password",
    response_class=HTMLResponse,
    summary="The set-password page the welcome email links to",
    responses={
        404: json_error_response("Unknown link"),
        410: json_error_response("Expired, used or replaced link"),
        422: json_error_response("The token is malformed"),
    },
)
async def set_password_page(
    request: Request,
    token: Annotated[str, Query(min_length=16, max_length=128, pattern=_TOKEN_PATTERN)],
    pool: Pool,
) -> HTMLResponse:
    await _usable_token(pool, token, unknown_status=404)
    return _page(request, token)


async def submitted_fields(request: Request) -> tuple[dict[str, Any], bool]:
    """The body's fields, and whether they came from a form (urlencoded)."""
    body = await request.body()
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == _FORM:
        fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return dict(fields[:10]), True
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        problem = {"loc": ("body",), "msg": "must be a JSON object", "type": "json_invalid"}
        raise RequestValidationError([problem])
    return data, False


def validated(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_input=False)) from None


async def _set(pool: Pool, token: str, password: str, *, unknown_status: int) -> None:
    """Check the token and the password, then store the hash; ApiError otherwise."""
    found = await _usable_token(pool, token, unknown_status=unknown_status)
    strength = await _strength(pool, found, password)
    if not strength.acceptable:
        raise ApiError(422, "weak_password", weakness_message(strength))
    password_hash = await hash_password(password)
    outcome = await checkout.set_password(
        pool, token_hash=hash_token(token), purpose=SET_PASSWORD, password_hash=password_hash
    )
    if outcome is SetPasswordOutcome.GONE:
        # Used, expired or replaced between the check and the transaction.
        again = await password_tokens.find_by_hash(
            pool, token_hash=hash_token(token), purpose=SET_PASSWORD
        )
        raise _gone(again or found, token)
    if outcome is SetPasswordOutcome.UNKNOWN:
        raise _unknown(unknown_status)


@router.post(
    "/set-password",
    status_code=204,
    summary="Set the user's password with a set-password token",
    description="A JSON body answers 204 or the JSON error shape; a form post from a "
    "browser (urlencoded) answers 303 to the dashboard, or the page with the error inline.",
    openapi_extra=_BODY_SCHEMA,
    responses={
        303: {"description": "Form post from a browser: the password is set"},
        400: {"model": ErrorResponse, "description": "Unknown token"},
        **_LINK_ERRORS,
    },
)
async def set_password(request: Request, pool: Pool) -> Response:
    data, form = await submitted_fields(request)
    if form and wants_html(request):
        return await _set_from_form(request, pool, data)
    submitted = validated(SetPasswordRequest, data)
    await _set(pool, submitted.token, submitted.password, unknown_status=400)
    return Response(status_code=204)


async def _set_from_form(request: Request, pool: Pool, data: dict[str, Any]) -> Response:
    token, password = str(data.get("token", "")), str(data.get("password", ""))
    if not _TOKEN_SHAPE.fullmatch(token):
        raise _unknown(400)
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        error = (
            f"Use at least {MIN_PASSWORD_LENGTH} characters."
            if len(password) < MIN_PASSWORD_LENGTH
            else f"Use at most {MAX_PASSWORD_LENGTH} characters."
        )
        return _page(request, token, status=422, error=error)
    try:
        await _set(pool, token, password, unknown_status=400)
    except ApiError as refused:
        if refused.code != "weak_password":
            raise
        return _page(request, token, status=refused.status, error=refused.message)
    settings = request.app.state.settings
    return RedirectResponse(dashboard_url(settings), status_code=303)


@router.post(
    "/password-strength",
    summary="How strong a password is, as the set-password page shows it while typing",
    description="Rated with the user's own email and username; the password is neither "
    "stored nor logged. Rate-limited per token like the other token routes.",
    responses={
        400: {"model": ErrorResponse, "description": "The body is not JSON"},
        404: {"model": ErrorResponse, "description": "Unknown token"},
        429: token_limits.RATE_LIMITED_RESPONSE,
        **_LINK_ERRORS,
    },
)
async def password_strength_hint(
    request: Request, submitted: StrengthRequest, pool: Pool
) -> PasswordStrength:
    token_limits.check(request, "password-strength", submitted.token)
    found = await _usable_token(pool, submitted.token, unknown_status=404)
    return await _strength(pool, found, submitted.password)
