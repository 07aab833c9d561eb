"""What the billing modules share: subscription states, retry and expiry delays, the
error a failed payment answers, money and plan views."""

from __future__ import annotations

from sandbox.domain.cards import AUTHENTICATION_REQUIRED, Decline
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, card_declined, invalid
from sandbox.domain.jsontypes import Obj

ENDED = frozenset({"canceled", "incomplete_expired"})


RETRY_AFTER_DAYS = (3, 5, 7)
"""Days after the first failure at which a renewal is retried (Stripe's classic schedule)."""


INCOMPLETE_SECONDS = 23 * 60 * 60
"""An `incomplete` subscription whose first invoice is unpaid expires after 23 h."""


PENDING_UPDATE_SECONDS = 23 * 60 * 60
"""A pending update expires 23 h after the update at the latest (Stripe's pending updates)."""


REQUIRES_ACTION_MESSAGE = (
    "This payment requires additional user action before it can be completed successfully. "
    "Payment can be completed using the PaymentIntent associated with the invoice. For more "
    "details see: https://stripe.com/docs/billing/subscriptions/overview#requires-action"
)


NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please consider "
    "adding a default payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
    "#payment-method-priority."
)


def payment_error(decline: Decline) -> StripeError:
    """The error Stripe answers when a payment made during a request did not succeed.

    A card that needs authentication is a 402 `invoice_payment_intent_requires_action`
    (the invoice stays open; the customer completes it on the hosted invoice page).
    """
    if decline is AUTHENTICATION_REQUIRED:
        code = "invoice_payment_intent_requires_action"
        return card_declined(code, None, REQUIRES_ACTION_MESSAGE)
    if decline.code == "resource_missing":
        return invalid(NO_PAYMENT_METHOD, code="resource_missing")
    return card_declined(decline.code, decline.decline_code, decline.message)


def money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    if currency == "usd":
        return f"{sign}${abs(amount) / 100:.2f}"
    return f"{sign}{abs(amount) / 100:.2f} {currency.upper()}"


def plan_of(price: Obj) -> Obj:
    """The legacy `plan` view of a recurring price, still shown on subscription items."""
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def interval_of(price: Obj) -> tuple[str, int]:
    recurring = price["recurring"] or {"interval": "month", "interval_count": 1}
    return recurring["interval"], recurring["interval_count"]


def subscription_of(inv: Obj) -> str | None:
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    value = details.get("subscription")
    return str(value) if value else None


def product_name(ctx: Ctx, product_id: str) -> str:
    product = ctx.store.get(product_id, "product")
    return str(product["name"]) if product else product_id
