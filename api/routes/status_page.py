"""The hosted status page a customer lands on after Stripe's Checkout, and its state.

`GET /v1/checkout/return` hands the browser a short-lived view token bound to the
session and its user (`onramp.view_tokens`); no API key and no user id alone opens
this page. The page reads the one setup-status contract (`onramp.checkout.setup_status`,
from Postgres, so it answers with the worker down) and follows `next_action`: the
payment being confirmed, the workspace being prepared, the email to set a password (with
a resend button), then the dashboard. `status.js` polls `…/state` (the same fields as
JSON, never an email or a secret) and replaces the content without a reload; without
JavaScript a meta refresh reloads the page until it reaches its last step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api import token_limits
from api.deps import Pool, Settings
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError, ErrorResponse, json_error_response
from api.pages.render import dashboard_url, render_page
from onramp import checkout
from onramp.checkout import SetupStatus
from onramp.repositories import billing, checkout_runs
from onramp.settings import ApiSettings
from onramp.view_tokens import MAX_VIEW_TOKEN_LENGTH, ViewClaims, verify_view_token

router = APIRouter(prefix="/v1/checkout/status-page", tags=["checkout"])

RESEND_URL = "/v1/portal/set-password/resend"
# The page's script polls at most once a second; a storm of one token is refused.
STATE_POLLS_PER_MINUTE = 90
# An open session still unpaid this long after its last change: say why the page waits.
SLOW_SECONDS = 10.0

Stage = Literal["confirming", "payment_ended", "preparing", "check_email", "dashboard"]
StepState = Literal["done", "current", "todo"]
ViewToken = Annotated[str, Query(min_length=3, max_length=MAX_VIEW_TOKEN_LENGTH)]


class StatusStep(BaseModel):
    key: Literal["paid", "prepared", "email_sent", "password_set"]
    label: str
    state: StepState


class StatusAction(BaseModel):
    """A link, or a form posting the view token to `url` (the resend button)."""

    label: str
    url: str
    method: Literal["get", "post"] = "get"
    primary: bool = True


class StatusView(BaseModel):
    """What the status page shows; the state endpoint's answer."""

    stage: Stage
    next_action: Literal["pay", "wait_provisioning", "set_password", "go_to_dashboard"]
    heading: str
    message: str
    reason: str | None
    actions: list[StatusAction]
    steps: list[StatusStep]
    # Nothing more will change on this page: the script stops polling, no meta refresh.
    final: bool


class PaymentFacts(BaseModel):
    """What the run and the billing row say about an unpaid payment."""

    outcome: Literal["expired", "failed"] | None = None
    invoice_url: str | None = None
    since_change: float = 0.0


def _steps(status: SetupStatus) -> list[StatusStep]:
    password = status.password_state
    done = [
        ("paid", "Payment received", status.payment_state == "paid"),
        ("prepared", "Workspace prepared", status.provisioning_state == "completed"),
        ("email_sent", "Email sent to set your password", password in ("sent", "set")),
        ("password_set", "Password set", password == "set"),  # noqa: S105
    ]
    steps: list[StatusStep] = []
    current_taken = False
    for key, label, finished in done:
        state: StepState = "done" if finished else "todo"
        if not finished and not current_taken:
            state, current_taken = "current", True
        steps.append(StatusStep.model_validate({"key": key, "label": label, "state": state}))
    return steps


@dataclass(frozen=True)
class _Shown:
    """One stage's words and ways forward (the steps are computed apart)."""

    stage: Stage
    heading: str
    message: str
    reason: str | None = None
    actions: tuple[StatusAction, ...] = ()
    final: bool = False


def _payment_stage(status: SetupStatus, facts: PaymentFacts, back: StatusAction) -> _Shown:
    if status.payment_state == "unpaid" and facts.outcome is not None:
        message = (
            "The checkout session expired before a payment was made."
            if facts.outcome == "expired"
            else "Your payment did not go through, and nothing was charged."
        )
        return _Shown(
            "payment_ended", "Your payment was not completed", message, None, (back,), True
        )
    heading = "Confirming your payment…"
    message = "This page moves on by itself once your payment is confirmed."
    if facts.invoice_url is not None:
        action = StatusAction(label="Confirm the payment", url=facts.invoice_url)
        asked = "Your bank asks you to confirm this payment before it can complete."
        return _Shown("confirming", heading, message, asked, (action,))
    reason = None
    if status.payment_state == "confirming":
        reason = (
            "Your payment method settles later (a bank transfer or a debit can take a few "
            "business days). You can close this page: we will email you once it is done."
        )
    elif facts.since_change >= SLOW_SECONDS:
        reason = "Stripe is still processing your payment; this can take a minute."
    return _Shown("confirming", heading, message, reason)


def _stage(status: SetupStatus, facts: PaymentFacts, settings: ApiSettings) -> _Shown:
    dashboard = dashboard_url(settings)
    if status.payment_state != "paid":
        back = StatusAction(label=f"Back to {settings.platform_name}", url=dashboard, primary=False)
        return _payment_stage(status, facts, back)
    if status.next_action == "wait_provisioning":
        message = "Your payment is received. This page moves on by itself when it is ready."
        reason = None
        if status.provisioning_state == "failed":
            reason = "This is taking longer than usual; we are on it and will email you."
        return _Shown("preparing", "Your workspace is being prepared", message, reason)
    if status.next_action == "set_password":
        resend = StatusAction(label="Send the email again", url=RESEND_URL, method="post")
        message = "We sent you an email with a link to set your password."
        return _Shown(
            "check_email", "Check your email to set your password", message, None, (resend,)
        )
    message = "Your workspace is ready and your password is set."
    # The tenant's own dashboard, when the platform's provisioning hook answered one.
    go = StatusAction(label="Go to your dashboard", url=status.dashboard_url or dashboard)
    return _Shown("dashboard", "You are all set", message, None, (go,), final=True)


def build_view(status: SetupStatus, facts: PaymentFacts, settings: ApiSettings) -> StatusView:
    """The page's content from the status contract (and, before the payment is settled,
    the run's outcome and the billing row's pending action)."""
    shown = _stage(status, facts, settings)
    return StatusView(
        stage=shown.stage,
        next_action=status.next_action,
        heading=shown.heading,
        message=shown.message,
        reason=shown.reason,
        actions=list(shown.actions),
        steps=_steps(status),
        final=shown.final,
    )


def _claims(settings: ApiSettings, view: str) -> ViewClaims:
    """The token's claims; 410 when it was ours but has expired, 404 when it never was."""
    now = time.time()
    claims = verify_view_token(settings.onramp_token_secret, view, now=now)
    if claims is not None:
        return claims
    if verify_view_token(settings.onramp_token_secret, view, now=0) is not None:
        raise ApiError(
            410,
            "view_token_expired",
            "This status link has expired. Your setup goes on: check your email, or go "
            "back to the platform.",
        )
    raise ApiError(404, "view_token_invalid", "This status link is not valid")


async def _facts(pool: Pool, status: SetupStatus) -> PaymentFacts:
    if status.payment_state == "paid":
        return PaymentFacts()
    run = await checkout_runs.latest_run(pool, status.user_id)
    row = await billing.get_billing(pool, status.user_id)
    invoice_url = None
    if (
        row is not None
        and row.payment_state == "requires_action"
        and row.payment_action_kind == "new_subscription"
    ):
        invoice_url = row.payment_action_url
    since = 0.0
    if run is not None:
        since = (datetime.now(UTC) - run.updated_at).total_seconds()
    return PaymentFacts(
        outcome=run.payment_outcome if run is not None else None,
        invoice_url=invoice_url,
        since_change=since,
    )


async def _view(settings: ApiSettings, pool: Pool, view: str) -> StatusView:
    claims = _claims(settings, view)
    status = await checkout.setup_status(pool, claims.user_id)
    if status is None:
        raise ApiError(404, "view_token_invalid", "This status link is not valid")
    return build_view(status, await _facts(pool, status), settings)


def _check_polls(request: Request, view: str) -> None:
    """One token's polls, counted by digest in this process (like `token_limits`)."""
    counter: token_limits.WindowCounter | None = getattr(
        request.app.state, "status_poll_counter", None
    )
    if counter is None:
        counter = token_limits.WindowCounter()
        request.app.state.status_poll_counter = counter
    wait = counter.hit(token_limits.digest(view), STATE_POLLS_PER_MINUTE)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests for this link; try again shortly",
            headers={"Retry-After": str(math.ceil(wait))},
        )


_EXPIRED = "An expired view token"
_UNKNOWN = "A view token that is not ours, or names no user"
_MALFORMED = "No view token, or one too long"
# The page's errors are JSON for programs (a browser gets them as a page).
_PAGE_ERRORS: dict[int | str, dict[str, object]] = {
    404: json_error_response(_UNKNOWN),
    410: json_error_response(_EXPIRED),
    422: json_error_response(_MALFORMED),
    429: {
        **json_error_response("Too many requests for this link or from this address"),
        "headers": token_limits.RATE_LIMITED_RESPONSE["headers"],
    },
}
_STATE_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": _UNKNOWN},
    410: {"model": ErrorResponse, "description": _EXPIRED},
    422: VALIDATION_ERROR_RESPONSE,
    429: token_limits.RATE_LIMITED_RESPONSE,
}


@router.get(
    "",
    response_class=HTMLResponse,
    summary="The hosted status page after Checkout (a view token opens it, no API key)",
    responses=_PAGE_ERRORS,
)
async def status_page(
    request: Request, view: ViewToken, settings: Settings, pool: Pool
) -> HTMLResponse:
    token_limits.check(request, "status_page", view)
    shown = await _view(settings, pool, view)
    return render_page(
        request,
        "status.html",
        title=shown.heading,
        script="status.js",
        view=shown,
        view_token=view,
        state_url=f"{router.prefix}/state",
    )


@router.get(
    "/state",
    summary="The status page's content as JSON, for its script (polled with backoff)",
    responses=_STATE_ERRORS,
)
async def status_state(
    request: Request, view: ViewToken, settings: Settings, pool: Pool
) -> StatusView:
    _check_polls(request, view)
    return await _view(settings, pool, view)
