"""The set-password page and its form's target, answered by the API alone.

No API key: the token authorises. The token is hashed to find its row (Postgres keeps
only sha256(token)); the password is hashed with argon2id in a thread and stored in
one transaction with the token's use and `password_state=set`. Neither the token nor
the password reaches Temporal, a log or the database in the clear.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import Pool
from api.edge import html_policy
from api.errors import ApiError, ErrorResponse, json_error_response
from onramp import checkout
from onramp.checkout import SetPasswordOutcome
from onramp.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, SET_PASSWORD, hash_password
from onramp.tokens import hash_token

router = APIRouter(prefix="/v1/portal", tags=["portal"])

_TOKEN = Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")

_ACTION = "/v1/portal/set-password"

# The page's one script, inline (a single request, nothing to cache) and allowed by its
# hash in the page's Content-Security-Policy, so no other inline script could run.
_SCRIPT = """
document.getElementById("set-password").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("{action}", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: form.get("token"), password: form.get("password")}),
  });
  const result = document.getElementById("result");
  if (response.status === 204) { result.textContent = "Your password is set."; return; }
  const body = await response.json().catch(() => ({}));
  result.textContent = (body.error && body.error.message) || "Something went wrong.";
});
""".replace("{action}", _ACTION)
_POLICY = html_policy(
    script_hashes=[base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()]
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Set your password</title>
<meta name="referrer" content="no-referrer"></head>
<body>
<h1>Set your password</h1>
<form id="set-password">
  <input type="hidden" name="token" value="{token}">
  <label>Password (at least {min_length} characters)
    <input type="password" name="password" minlength="{min_length}" required
           autocomplete="new-password"></label>
  <button type="submit" id="submit">Set password</button>
</form>
<p id="result" role="status"></p>
<script>{script}</script>
</body></html>
"""


class SetPasswordRequest(BaseModel):
    token: str = _TOKEN
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


def _gone() -> ApiError:
    return ApiError(410, "token_gone", "This link has expired or was already used")


def _unknown() -> ApiError:
    return ApiError(400, "invalid_token", "This link is not valid")


@router.get(
    "/set-password",
    response_class=HTMLResponse,
    summary="The set-password page the welcome email links to",
    responses={
        400: json_error_response("Unknown token"),
        410: json_error_response("Expired or used token"),
        422: json_error_response("The token is malformed"),
    },
)
async def set_password_page(
    token: Annotated[str, Query(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")],
    pool: Pool,
) -> HTMLResponse:
    outcome = await checkout.token_is_usable(
        pool, token_hash=hash_token(token), purpose=SET_PASSWORD
    )
    if outcome is SetPasswordOutcome.UNKNOWN:
        raise _unknown()
    if outcome is SetPasswordOutcome.GONE:
        raise _gone()
    page = _PAGE.format(
        token=html.escape(token, quote=True), min_length=MIN_PASSWORD_LENGTH, script=_SCRIPT
    )
    return HTMLResponse(
        page, headers={"Cache-Control": "no-store", "Content-Security-Policy": _POLICY}
    )


@router.post(
    "/set-password",
    status_code=204,
    summary="Set the user's password with a set-password token",
    responses={
        400: {"model": ErrorResponse, "description": "Unknown token"},
        410: {"model": ErrorResponse, "description": "Expired or used token"},
        422: {"model": ErrorResponse, "description": "Password too short"},
    },
)
async def set_password(request: SetPasswordRequest, pool: Pool) -> Response:
    token_hash = hash_token(request.token)
    # Check first, so an unknown token costs no argon2 hashing.
    found = await checkout.token_is_usable(pool, token_hash=token_hash, purpose=SET_PASSWORD)
    if found is SetPasswordOutcome.UNKNOWN:
        raise _unknown()
    if found is SetPasswordOutcome.GONE:
        raise _gone()
    password_hash = await hash_password(request.password)
    outcome = await checkout.set_password(
        pool, token_hash=token_hash, purpose=SET_PASSWORD, password_hash=password_hash
    )
    if outcome is SetPasswordOutcome.UNKNOWN:
        raise _unknown()
    if outcome is SetPasswordOutcome.GONE:
        raise _gone()
    return Response(status_code=204)
