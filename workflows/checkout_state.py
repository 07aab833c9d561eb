"""Pure decisions of `checkout-<user>`: what a re-read session means, which payment
state to record, whether a `start_checkout` may run, and when to re-read next.

No I/O and no clock, like `subscription_state`: the workflow performs what these
decide, and the tests call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workflows import errors
from workflows.contracts.checkout import (
    CheckoutSessionSnapshot,
    PaymentOutcome,
    PaymentState,
    SessionStatus,
)
from workflows.failures import Refusal

# What a re-read session says about the run: still payable, paid but settling, or
# decided (paid, expired, failed).
SessionOutcome = Literal["open", "confirming", "paid", "expired", "failed"]
DECIDED: tuple[SessionOutcome, ...] = ("paid", "expired", "failed")
FirstPayment = Literal["paid", "failed"]


@dataclass(frozen=True)
class PaymentRecord:
    """The payment state to record for the run (Postgres and the `status` query)."""

    payment_state: PaymentState
    session_status: SessionStatus
    outcome: PaymentOutcome | None = None
    subscription_id: str | None = None


@dataclass(frozen=True)
class SessionDecision:
    outcome: SessionOutcome
    record: PaymentRecord | None  # None: nothing new to record


StartPlan = Literal["create", "reuse", "replace"]


def first_payment_outcome(snapshot: CheckoutSessionSnapshot) -> FirstPayment | None:
    """The first payment's outcome as the session's subscription and latest invoice
    show it: "paid", "failed", or None while it may still settle.

    A complete session whose payment is unsettled says `payment_status=unpaid` whatever
    happens next; Stripe records the outcome on the subscription and its first invoice.
    Paid: the invoice is paid and the subscription `active`/`trialing`. Failed: Stripe
    ended the subscription (`incomplete_expired` 23 h after an unpaid first invoice, or
    `canceled`), marked it `past_due`/`unpaid`, or voided or wrote off the invoice.
    """
    subscription, invoice = snapshot.subscription_status, snapshot.invoice_status
    if invoice == "paid" and subscription in ("active", "trialing"):
        return "paid"
    if subscription in ("incomplete_expired", "canceled", "past_due", "unpaid"):
        return "failed"
    if invoice in ("void", "uncollectible"):
        return "failed"
    return None


def decide_session(
    snapshot: CheckoutSessionSnapshot, *, async_failed: bool, payment_state: PaymentState
) -> SessionDecision:
    """What a re-read session (already known to be the run's and the user's) decides.

    `async_failed`: Stripe sent `async_payment_failed` for this session; `payment_state`:
    the state recorded so far (a confirming payment is recorded once)."""
    if snapshot.status == "expired":
        return SessionDecision("expired", PaymentRecord("unpaid", "expired", outcome="expired"))
    if snapshot.status != "complete":
        return SessionDecision("open", None)
    first_payment = first_payment_outcome(snapshot)
    if snapshot.payment_status in ("paid", "no_payment_required") or first_payment == "paid":
        record = PaymentRecord("paid", "complete", subscription_id=snapshot.subscription_id)
        return SessionDecision("paid", record)
    if async_failed or first_payment == "failed":
        return SessionDecision("failed", PaymentRecord("unpaid", "complete", outcome="failed"))
    if payment_state != "confirming":
        return SessionDecision("confirming", PaymentRecord("confirming", "complete"))
    return SessionDecision("confirming", None)


def is_decided(outcome: SessionOutcome) -> bool:
    """Paid, expired or failed: no `start_checkout` may replace the session any more,
    and the run stops waiting for payment."""
    return outcome in DECIDED


def foreign_customers(
    snapshot: CheckoutSessionSnapshot, saved_customer_id: str | None
) -> list[str]:
    """Ownership: the customers of the session and of its subscription that
    are not the one saved for the user (empty: the session is the user's)."""
    return [
        customer
        for customer in (snapshot.customer_id, snapshot.subscription_customer_id)
        if customer is not None and customer != saved_customer_id
    ]


def next_reread_interval(
    interval: float, *, woke: bool, first_seconds: float, max_seconds: float
) -> float:
    """A trigger (an event, the user's return) starts the wait over; a quiet re-read
    or a refused one doubles it, capped."""
    if woke:
        return first_seconds
    return min(interval * 2, max_seconds)


def closed_refusal(closed_reason: str | None) -> Refusal | None:
    """A run that is paid or ending takes no further `start_checkout`."""
    if closed_reason == "paid":
        return Refusal(
            "this checkout is paid; change plans through the subscription",
            errors.CHECKOUT_CONFLICT,
        )
    if closed_reason is not None:
        return Refusal(
            f"this checkout run is ending ({closed_reason}); start a new one",
            errors.CHECKOUT_CLOSED,
        )
    return None


def start_plan(
    current: CheckoutSessionSnapshot | None,
    current_plan: tuple[str | None, str | None],
    requested_plan: tuple[str, str],
) -> StartPlan | Refusal:
    """What a `start_checkout` does with the run's current session: hand out the open
    one (same plan), expire it and create another (another plan), or create the first.

    A complete session holds a payment at Stripe (a delayed method still settling):
    another session would start a second subscription beside it."""
    if current is not None and current.status == "complete":
        return Refusal(
            "the current checkout's payment is still confirming; wait for its outcome",
            errors.CHECKOUT_CONFLICT,
        )
    if current is not None and current.status == "open":
        return "reuse" if current_plan == requested_plan else "replace"
    return "create"


def price_for(prices: dict[str, str], tier: str, billing_cycle: str) -> str | Refusal:
    """The configured Stripe price of a plan."""
    price = prices.get(f"{tier}_{billing_cycle}")
    if price is None:
        return Refusal(
            f"no Stripe price configured for {tier} {billing_cycle}",
            errors.PRICE_NOT_CONFIGURED,
        )
    return price
