"""What customers, Stripe and time would do, on request of the control API: each
simulation takes the call's context and its JSON body and answers a JSON-ready object
(`sandbox.http.control` serves them under `/_sandbox/`, one at a time under the lock)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.domain import billing
from sandbox.domain.cards import AUTHENTICATION_REQUIRED, CARDS, Decline
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, invalid
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import accounts, checkout, checkout_payment, invoices, payment_methods
from sandbox.domain.resources.subscriptions import get_subscription
from sandbox.domain.scheduler import run_due

Simulation = Callable[[Ctx, Obj], Obj]


def pay_session(ctx: Ctx, data: Obj) -> Obj:
    session = checkout.get_session(ctx, ctx.path["id"])
    return checkout_payment.pay_session(
        ctx, session, str(data.get("payment_method") or "pm_card_visa")
    )


def settle_session(ctx: Ctx, data: Obj) -> Obj:
    session = checkout.get_session(ctx, ctx.path["id"])
    return checkout_payment.settle_session(ctx, session, data.get("outcome"))


def expire_session(ctx: Ctx, data: Obj) -> Obj:
    return checkout.expire_session(ctx, checkout.get_session(ctx, ctx.path["id"]))


def complete_onboarding(ctx: Ctx, data: Obj) -> Obj:
    # `{"capability_status": "pending"}`: details submitted, Stripe still verifying.
    status = data.get("capability_status") or "active"
    if status not in ("active", "pending"):
        raise bad_param("capability_status must be active or pending", "capability_status")
    account = accounts.get_account(ctx, ctx.path["id"])
    return accounts.complete_onboarding(ctx, account, str(status))


def update_account(ctx: Ctx, data: Obj) -> Obj:
    return accounts.simulate_update(ctx, accounts.get_account(ctx, ctx.path["id"]), data)


def fail_payment(ctx: Ctx, data: Obj) -> Obj:
    sub = get_subscription(ctx, ctx.path["id"])
    if sub["status"] in billing.ENDED:
        raise invalid(f"The subscription has ended ({sub['status']}).")
    token = str(data.get("payment_method") or "pm_card_chargeDeclined")
    card = CARDS.get(token)
    decline = (
        card.decline
        if card and card.decline
        else AUTHENTICATION_REQUIRED
        if card and card.authentication
        else Decline("card_declined", "generic_decline", "Your card was declined.")
    )
    pending = billing.billing_invoices(ctx, sub)
    if pending:
        inv = pending[-1]
    else:
        # Nothing open: bill the current period now, as a renewal would.
        item = sub["items"]["data"][0]
        inv = billing.invoice_subscription(
            ctx,
            sub,
            billing_reason="subscription_cycle",
            period_start=item["current_period_start"],
            period_end=item["current_period_start"],
        )
    if inv["status"] == "open":
        billing.attempt_payment(
            ctx, inv, billing.payment_method_for(ctx, sub), decline, forced=True
        )
    if sub["status"] in ("active", "trialing"):
        billing.set_status(ctx, sub, "past_due")
    return {"subscription": sub, "invoice": inv}


def pay_subscription(ctx: Ctx, data: Obj) -> Obj:
    sub = get_subscription(ctx, ctx.path["id"])
    pending = billing.open_invoices(ctx, sub)
    if not pending:
        raise invalid("This subscription has no open invoice to pay.")
    token = data.get("payment_method")
    if token:
        pm = payment_methods.resolve(ctx, str(token), "payment_method")
        payment_methods.attach(ctx, pm, sub["customer"])
        decline = billing.pay_open_invoices(ctx, sub, pm["id"])
    else:
        # Like the customer paying on the hosted invoice page: it succeeds.
        for inv in pending:
            billing.attempt_payment(ctx, inv, None, None, forced=True)
        billing.settle_status(ctx, sub)
        decline = None
    if decline is not None:
        raise billing.payment_error(decline)
    return {"subscription": sub, "invoices": [i["id"] for i in pending]}


def authenticate_invoice(ctx: Ctx, data: Obj) -> Obj:
    """The customer completes (`succeed`) or fails 3-D Secure, as on the hosted page."""
    outcome = data.get("outcome", "succeed")
    if outcome not in ("succeed", "fail"):
        raise bad_param("outcome must be succeed or fail", "outcome")
    inv = invoices.get_invoice(ctx, ctx.path["id"])
    if not billing.awaiting_authentication(ctx, inv):
        raise invalid(f"This invoice ({inv['status']}) has no payment waiting for authentication.")
    decline = billing.authenticate(ctx, inv, succeed=outcome == "succeed")
    sub_id = billing.subscription_of(inv)
    return {
        "invoice": inv,
        "subscription": ctx.store.get(sub_id, "subscription") if sub_id else None,
        "decline_code": None if decline is None else (decline.decline_code or decline.code),
    }


def advance_clock(ctx: Ctx, data: Obj) -> Obj:
    sb = ctx.sb
    now = sb.clock.now()
    if "to" in data:
        target = int(data["to"])
    else:
        try:
            target = now + int(data.get("seconds", 0))
        except (TypeError, ValueError):
            raise bad_param("seconds must be an integer", "seconds") from None
    if target < now:
        raise bad_param("The sandbox clock only moves forward.", "seconds")
    steps = run_due(sb, target, ctx.base_url)
    return {"now": sb.clock.now(), "offset": sb.clock.offset, "steps": steps}
