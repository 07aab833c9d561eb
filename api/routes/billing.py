"""The hosted billing page, opened through a single-use portal session.

`POST /v1/users/{id}/portal-sessions` (client key) answers a link the platform sends
its user to; `GET /v1/billing/enter` consumes it and sets the browser's session cookie
(api/portal_sessions.py); `GET /v1/billing` shows the subscription, the grace period, a
payment that waits for the customer and the invoices, all from Postgres. Plan changes
are small forms: each runs the same update of `subscription-<user>` as the API
(api/operations.py, with its validators and refusals), then 303s back to the page with a
note of what happened; a refusal re-renders the page with the message and the status.
The payment method is changed on Stripe's hosted Checkout (setup mode), never typed here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from api.auth import ClientKey
from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import (
    ERROR_RESPONSES,
    MALFORMED_BODY_RESPONSE,
    ApiError,
    ErrorResponse,
    json_error_response,
)
from api.operations import SUBSCRIPTION_ENTITY, change_subscription, update_entity
from api.pages.negotiation import answers_a_person
from api.pages.render import dashboard_url, render_page
from api.portal_sessions import (
    COOKIE_PATH,
    CSRF_FIELD,
    LINK_PATTERN,
    BillingSession,
    CurrentBillingSession,
    create_portal_session,
    open_portal_session,
    set_browser_cookie,
)
from api.subscription_changes import SubscriptionResponse, subscription_of
from api.user_guard import require_active_user
from onramp.repositories import invoices
from onramp.settings.values import HttpUrlStr
from workflows.contracts.common import UpdateRef
from workflows.contracts.subscription import (
    CANCEL,
    DOWNGRADE,
    OPEN_PAYMENT_METHOD_SETUP,
    REACTIVATE,
    UPGRADE,
    DowngradeRequest,
    EmptyRequest,
    PaymentMethodSetupRequest,
    SubscriptionWorkflowInput,
    UpgradeRequest,
)

router = APIRouter(tags=["billing page"])

TIERS = ("free", "pro", "enterprise")
PAID_TIERS = ("pro", "enterprise")
Change = Literal["upgrade", "downgrade", "cancel", "reactivate"]

# What the page says after a change went through (`?done=`): fixed words, never echoed.
DONE = {
    "upgrade": "Your plan was upgraded.",
    "downgrade": "Your plan was changed.",
    "cancel": "Your subscription will end at the close of the current period.",
    "reactivate": "Your subscription continues; the cancellation was undone.",
    "payment_method": "Thank you: Stripe is confirming your new payment method.",
}
STATUS_WORDS = {
    "none": "No paid subscription",
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Payment overdue",
    "unpaid": "Unpaid",
    "incomplete": "Waiting for the first payment",
    "incomplete_expired": "Ended (the first payment never came)",
    "canceled": "Canceled",
}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "huf", "twd", "ugx"}


# The errors of the billing routes (JSON for programs; a page for a browser).
SESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: json_error_response("No billing session: the cookie is missing or has expired"),
    404: json_error_response("The session's user no longer exists"),
    409: json_error_response("The user is still signing up"),
    422: json_error_response("The request is not valid"),
}
FORM_ERRORS: dict[int | str, dict[str, Any]] = {
    **SESSION_ERRORS,
    400: json_error_response("The change is not possible (the workflow's refusal)"),
    403: json_error_response("The form lacks this session's CSRF token"),
    409: json_error_response("The change conflicts with the subscription's state"),
    502: json_error_response("Stripe or the database failed the change"),
    503: json_error_response("Temporal unreachable, or the change still running; retry"),
}


class PortalSessionBody(BaseModel):
    return_url: HttpUrlStr | None = Field(
        default=None,
        max_length=2000,
        description="where the page's way back leads (http or https; unset: DASHBOARD_URL)",
    )


class PortalSessionResponse(BaseModel):
    id: str
    url: str = Field(description="single-use: opens the billing page once, until expires_at")
    expires_at: datetime


@router.post(
    "/v1/users/{user_id}/portal-sessions",
    status_code=201,
    summary="A single-use link to the hosted billing page for this user",
    responses={
        **ERROR_RESPONSES,
        400: MALFORMED_BODY_RESPONSE,
        404: {"model": ErrorResponse, "description": "Unknown user"},
        409: {"model": ErrorResponse, "description": "The user is still signing up"},
    },
)
async def create_session(
    user_id: uuid.UUID,
    _: ClientKey,
    pool: Pool,
    settings: Settings,
    body: PortalSessionBody | None = None,
) -> PortalSessionResponse:
    # Checked here, not by ActiveUser: an invalid body answers 422 first.
    user = await require_active_user(pool, str(user_id))
    return_url = (body.return_url if body else None) or dashboard_url(settings)
    created = await create_portal_session(
        pool, settings, user_id=user.user_id, return_url=return_url
    )
    return PortalSessionResponse(id=created.id, url=created.url, expires_at=created.expires_at)


@router.get(
    "/v1/billing/enter",
    status_code=303,
    response_class=RedirectResponse,
    summary="Open a portal session's link: sets the billing cookie, then the billing page",
    responses={
        404: json_error_response("Unknown link"),
        410: json_error_response("The link was used already or has expired"),
        422: json_error_response("The link is malformed"),
    },
)
async def enter(
    session: Annotated[str, Query(pattern=LINK_PATTERN)], pool: Pool, settings: Settings
) -> Response:
    _, browser_token = await open_portal_session(pool, settings, session)
    # Relative: the browser stays on the host it opened the link on.
    response = RedirectResponse(COOKIE_PATH, status_code=303)
    set_browser_cookie(response, settings, browser_token)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get(
    "/v1/billing",
    response_class=HTMLResponse,
    summary="The hosted billing page",
    responses=SESSION_ERRORS,
)
async def billing_page(
    request: Request,
    billing: CurrentBillingSession,
    pool: Pool,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    return await _page(request, pool, billing, notice=DONE.get(done or ""))


@router.post(
    "/v1/billing/payment-method",
    response_class=HTMLResponse,
    summary="Change the payment method on Stripe's hosted Checkout (setup mode)",
    responses=FORM_ERRORS,
)
async def change_payment_method(
    request: Request,
    billing: CurrentBillingSession,
    pool: Pool,
    settings: Settings,
    temporal: Temporal,
) -> Response:
    form = await _form(request)
    billing.check_csrf(form.get(CSRF_FIELD))
    user = await require_active_user(pool, billing.user_id)
    back = f"{settings.onramp_public_url}{COOKIE_PATH}"
    try:
        setup = await update_entity(
            temporal, settings, SUBSCRIPTION_ENTITY, OPEN_PAYMENT_METHOD_SETUP,
            PaymentMethodSetupRequest(
                success_url=f"{back}?done=payment_method", cancel_url=back
            ),
            user_id=user.user_id,
            update_id=_update_id(billing, "payment_method", form.get("op")),
            deadline=Deadline.after(settings.subscription_update_wait_seconds),
        )  # fmt: skip
    except ApiError as refused:
        if not answers_a_person(request):
            raise
        return await _page(
            request, pool, billing, error=refused.message, status=refused.status,
            headers=refused.headers,
        )  # fmt: skip
    # A page that forwards, not a 303: the form's navigation may not leave for another
    # origin (CSP `form-action 'self'`), a link and a refresh may.
    return render_page(request, "billing_redirect.html", title="Continue to Stripe", url=setup.url)


@router.post(
    "/v1/billing/{change}",
    response_class=RedirectResponse,
    status_code=303,
    summary="A plan change from the billing page's form (then back to the page)",
    responses=FORM_ERRORS,
)
async def change_plan(
    change: Change,
    request: Request,
    billing: CurrentBillingSession,
    pool: Pool,
    settings: Settings,
    temporal: Temporal,
) -> Response:
    form = await _form(request)
    billing.check_csrf(form.get(CSRF_FIELD))
    user = await require_active_user(pool, billing.user_id)
    current = await subscription_of(pool, user)
    try:
        update, argument = _update_for(change, form.get("tier"), current)
        await change_subscription(
            temporal, settings, update, argument, user_id=user.user_id,
            update_id=_update_id(billing, change, form.get("op")),
            deadline=Deadline.after(settings.subscription_update_wait_seconds),
        )  # fmt: skip
    except ApiError as refused:
        if not answers_a_person(request):
            raise
        return await _page(
            request, pool, billing, error=refused.message, status=refused.status,
            headers=refused.headers,
        )  # fmt: skip
    return RedirectResponse(f"{COOKIE_PATH}?done={change}", status_code=303)


async def _page(
    request: Request,
    pool: asyncpg.Pool,
    billing: BillingSession,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    user = await require_active_user(pool, billing.user_id)
    subscription = await subscription_of(pool, user)
    rows = []
    if user.stripe_customer_id is not None:
        rows = await invoices.list_invoices(pool, user.user_id, limit=24, starting_after=None)
    kept = {name: value for name, value in (headers or {}).items() if name == "Retry-After"}
    return render_page(
        request,
        "billing.html",
        title="Billing",
        status=status,
        headers=kept,
        email=user.email,
        subscription=subscription,
        status_words=STATUS_WORDS.get(subscription.status, subscription.status),
        plans=_plans(subscription),
        invoices=[_invoice(row) for row in rows],
        return_url=billing.row.return_url,
        csrf_field=CSRF_FIELD,
        csrf=billing.csrf_token,
        op=str(uuid.uuid4()),
        notice=notice,
        error=error,
    )


def _update_for(
    change: Change, tier: str | None, current: SubscriptionResponse
) -> tuple[UpdateRef[SubscriptionWorkflowInput, Any, Any], BaseModel]:
    """The API's update and request for a form's change (the workflow validates it)."""
    if change == "upgrade":
        if tier not in PAID_TIERS:
            raise ApiError(400, "invalid_plan_change", "Choose a plan to upgrade to")
        cycle = current.billing_cycle or "monthly"
        return UPGRADE, UpgradeRequest(tier=tier, billing_cycle=cycle)
    if change == "downgrade":
        if tier not in TIERS:
            raise ApiError(400, "invalid_plan_change", "Choose a plan to change to")
        return DOWNGRADE, DowngradeRequest(tier=tier)
    return (CANCEL if change == "cancel" else REACTIVATE), EmptyRequest()


def _plans(subscription: SubscriptionResponse) -> list[dict[str, str]]:
    """The plan changes the page offers: the paid tiers other than the current one."""
    live = subscription.stripe_subscription_id is not None and subscription.status in (
        "active", "trialing", "past_due",
    )  # fmt: skip
    if not live:
        return []
    rank = TIERS.index(subscription.tier)
    return [
        {
            "tier": tier,
            "change": "upgrade" if TIERS.index(tier) > rank else "downgrade",
            "label": f"{'Upgrade' if TIERS.index(tier) > rank else 'Switch'} to {tier.title()}",
        }
        for tier in PAID_TIERS
        if tier != subscription.tier
    ]


def _invoice(row: invoices.InvoiceRow) -> dict[str, Any]:
    return {
        "number": row.number or row.id,
        "date": row.created.strftime("%d %b %Y"),
        "amount": _money(row.total, row.currency),
        "status": row.status,
        "hosted_invoice_url": row.hosted_invoice_url,
        "invoice_pdf": row.invoice_pdf,
    }


def _money(amount: int, currency: str) -> str:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return f"{amount:,} {code.upper()}"
    return f"{amount / 100:,.2f} {code.upper()}"


def _update_id(billing: BillingSession, change: str, op: str | None) -> str:
    """The update's id: one per form shown, so a double submit attaches to one update."""
    try:
        nonce = str(uuid.UUID(op or ""))
    except ValueError:
        nonce = str(uuid.uuid4())
    return str(uuid.uuid5(uuid.UUID(billing.row.session_id), f"{change}:{nonce}"))


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first value of each), read from the bounded body."""
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}
