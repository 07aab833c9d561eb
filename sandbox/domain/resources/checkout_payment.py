"""Paying a Checkout Session, which the hosted page and the control API share, and
settling a delayed payment later."""

from __future__ import annotations

import copy

from sandbox.domain import billing
from sandbox.domain.cards import CARDS, Decline, TestCard, payment_method_from_token
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, card_declined, invalid
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import payment_methods
from sandbox.domain.resources.checkout import expire_session, line_items
from sandbox.domain.resources.customers import new_customer
from sandbox.domain.resources.setup_intents import succeeded_setup_intent

BANK_DECLINE = Decline(
    "payment_method_provider_decline", None, "The customer's bank account could not be debited."
)


def _payable_card(ctx: Ctx, session: Obj, token: str) -> TestCard:
    """The test card the customer chose, once the session can still be paid with it."""
    if session["status"] == "open" and session["expires_at"] <= ctx.now:
        expire_session(ctx, session)
    if session["status"] != "open":
        raise invalid(f"This Checkout Session is no longer active (status: {session['status']}).")
    card = CARDS.get(token)
    if card is None:
        raise bad_param(
            f"Unknown test payment method {token!r}; use one of: {', '.join(CARDS)}.",
            "payment_method",
        )
    if card.decline is not None and not card.delayed:
        decline = card.decline
        raise card_declined(decline.code, decline.decline_code, decline.message)
    return card


def _customer_of(ctx: Ctx, session: Obj) -> Obj:
    """The session's customer, made now (`customer.created`) if it named none."""
    customer = ctx.store.get(session["customer"], "customer") if session["customer"] else None
    if customer is None:
        email = session["customer_email"] or f"checkout.{session['id'][-8:].lower()}@example.com"
        customer = new_customer(ctx, email=email)
        ctx.store.add(customer)
        ctx.emit("customer.created", customer)
    return customer


def _subscribe(ctx: Ctx, session: Obj, customer: Obj, pm: Obj, card: TestCard) -> tuple[Obj, Obj]:
    """The session's subscription and its first invoice, paid unless the card is delayed."""
    hidden = ctx.store.hidden_of(session["id"])
    # The prices as they are now (a session keeps a copy from its creation).
    lines: list[tuple[Obj, int, Obj]] = [
        (ctx.store.get(item["price"]["id"], "price") or item["price"], item["quantity"], {})
        for item in line_items(ctx, session)
    ]
    sub = billing.new_subscription(
        ctx,
        customer,
        lines,
        metadata=copy.deepcopy(hidden.get("subscription_metadata", {})),
        default_payment_method=pm["id"],
        description=hidden.get("subscription_description"),
    )
    inv = billing.build_invoice(
        ctx, sub, billing_reason="subscription_create", period_start=ctx.now, period_end=ctx.now
    )
    ctx.store.add(sub)
    ctx.emit("customer.subscription.created", sub)
    billing.issue(ctx, inv)
    if not card.delayed and inv["status"] == "open":
        billing.attempt_payment(ctx, inv, pm["id"])
    if inv["status"] == "paid":
        billing.set_status(ctx, sub, "active")
    return sub, inv


def _complete(ctx: Ctx, session: Obj, customer: Obj, sub: Obj, inv: Obj) -> None:
    session.update(
        {
            "status": "complete",
            "payment_status": "paid" if inv["status"] == "paid" else "unpaid",
            "customer": customer["id"],
            "subscription": sub["id"],
            "invoice": inv["id"],
            "url": None,
            "customer_details": {
                "address": customer["address"],
                "business_name": None,
                "email": customer["email"],
                "individual_name": None,
                "name": customer["name"],
                "phone": customer["phone"],
                "tax_exempt": "none",
                "tax_ids": [],
            },
        }
    )
    ctx.emit("checkout.session.completed", session)


def pay_session(ctx: Ctx, session: Obj, token: str) -> Obj:
    """What the hosted page's pay button does; a decline leaves the session open (402)."""
    if session["mode"] == "setup":
        return save_payment_method(ctx, session, token)
    card = _payable_card(ctx, session, token)
    customer = _customer_of(ctx, session)
    pm = payment_method_from_token(token, new_id("pm"), ctx.now)
    ctx.store.add(pm, {"token": token})
    payment_methods.attach(ctx, pm, customer["id"])
    sub, inv = _subscribe(ctx, session, customer, pm, card)
    ctx.store.hidden_of(session["id"])["payment_method_token"] = token
    _complete(ctx, session, customer, sub, inv)
    return session


def save_payment_method(ctx: Ctx, session: Obj, token: str) -> Obj:
    """A setup-mode session completes: the card is saved to the customer by a succeeded
    SetupIntent; nothing is charged and no subscription changes (that is the
    integration's job, on `checkout.session.completed`)."""
    _payable_card(ctx, session, token)
    customer = _customer_of(ctx, session)
    pm = payment_method_from_token(token, new_id("pm"), ctx.now)
    ctx.store.add(pm, {"token": token})
    payment_methods.attach(ctx, pm, customer["id"])
    metadata = ctx.store.hidden_of(session["id"]).get("setup_intent_metadata")
    intent = succeeded_setup_intent(ctx, customer["id"], pm, metadata)
    session.update(
        {
            "status": "complete",
            "payment_status": "no_payment_required",
            "customer": customer["id"],
            "setup_intent": intent["id"],
            "url": None,
        }
    )
    ctx.emit("checkout.session.completed", session)
    return session


def settle_session(ctx: Ctx, session: Obj, outcome: str | None) -> Obj:
    """A delayed payment settles: `async_payment_succeeded` or `async_payment_failed`."""
    hidden = ctx.store.hidden_of(session["id"])
    token = hidden.get("payment_method_token")
    if (
        session["status"] != "complete"
        or session["payment_status"] != "unpaid"
        or not token
        or not CARDS[token].delayed
        or hidden.get("settled")
    ):
        raise invalid("Only a completed session paid with a delayed method can settle, once.")
    card = CARDS[token]
    if outcome is None:
        outcome = "failed" if card.decline else "succeeded"
    if outcome not in ("succeeded", "failed"):
        raise bad_param("outcome must be succeeded or failed", "outcome")
    inv = get_invoice_for(ctx, session)
    sub = ctx.store.get(session["subscription"], "subscription")
    assert sub is not None
    hidden["settled"] = outcome
    decline = None if outcome == "succeeded" else (card.decline or BANK_DECLINE)
    billing.attempt_payment(ctx, inv, sub["default_payment_method"], decline, forced=True)
    if decline is None:
        billing.settle_status(ctx, sub)
        session["payment_status"] = "paid"
        ctx.emit("checkout.session.async_payment_succeeded", session)
    else:
        ctx.emit("checkout.session.async_payment_failed", session)
    return session


def get_invoice_for(ctx: Ctx, session: Obj) -> Obj:
    inv = ctx.store.get(session["invoice"], "invoice")
    assert inv is not None
    return inv
