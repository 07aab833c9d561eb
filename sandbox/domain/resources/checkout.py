"""Checkout sessions (mode `subscription`): create, retrieve, line items, expire, list;
and paying a session, which the hosted page and the control API share."""

from __future__ import annotations

import copy

from sandbox.domain import billing
from sandbox.domain.cards import CARDS, Decline, payment_method_from_token
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, card_declined, invalid, no_such
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, list_object, paginate
from sandbox.domain.params import (
    Bool,
    Created,
    Enum,
    Free,
    Hash,
    Int,
    ListOf,
    Metadata,
    Str,
    apply_metadata,
    validate,
)
from sandbox.domain.resources import payment_methods
from sandbox.domain.resources.customers import get_customer, new_customer
from sandbox.domain.resources.prices import get_price

BANK_DECLINE = Decline(
    "payment_method_provider_decline", None, "The customer's bank account could not be debited."
)
MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 60 * 60

FIELDS = {
    "mode": Enum("payment", "setup", "subscription"),
    "line_items": ListOf(
        Hash(
            {
                "price": Str(),
                "quantity": Int(minimum=0),
                "adjustable_quantity": Free(),
                "tax_rates": Free(),
                "dynamic_tax_rates": Free(),
            },
            required=["price", "quantity"],
        )
    ),
    "customer": Str(),
    "customer_email": Str(800),
    "client_reference_id": Str(200),
    "metadata": Metadata(),
    "subscription_data": Hash(
        {
            "metadata": Metadata(),
            "description": Str(500),
            "default_tax_rates": Free(),
            "proration_behavior": Enum("create_prorations", "none"),
            "invoice_settings": Free(),
            "application_fee_percent": Free(),
            "on_behalf_of": Str(),
            "transfer_data": Free(),
        }
    ),
    "success_url": Str(5000),
    "cancel_url": Str(5000),
    "return_url": Str(5000),
    "expires_at": Int(),
    # endive removed `payment_method_types` (the dashboard's payment method configuration
    # decides); `allowed_payment_method_types` filters it (stripe-python's
    # `SessionCreateParams`), so the removed name is refused as unknown.
    "allowed_payment_method_types": ListOf(Str()),
    "allow_promotion_codes": Bool(),
    "billing_address_collection": Enum("auto", "required"),
    "locale": Str(),
    "ui_mode": Enum("hosted", "embedded", "custom"),
    "customer_update": Free(),
    "consent_collection": Free(),
    "custom_text": Free(),
    "automatic_tax": Free(),
    "tax_id_collection": Free(),
    "payment_method_collection": Enum("always", "if_required"),
    "discounts": Free(),
    "phone_number_collection": Free(),
    "saved_payment_method_options": Free(),
    "customer_creation": Enum("always", "if_required"),
    "payment_method_configuration": Str(),
    "submit_type": Enum("auto", "book", "donate", "pay", "subscribe"),
}


def get_session(ctx: Ctx, session_id: str, param: str = "id") -> Obj:
    session = ctx.store.get(session_id, "checkout.session")
    if session is None:
        raise no_such("checkout.session", session_id, param)
    return session


def line_items(ctx: Ctx, session: Obj) -> list[Obj]:
    items: list[Obj] = ctx.store.hidden_of(session["id"]).get("line_items", [])
    return items


def line_items_list(ctx: Ctx, session: Obj) -> Obj:
    return list_object(
        line_items(ctx, session), f"/v1/checkout/sessions/{session['id']}/line_items"
    )


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, FIELDS, required=["mode"])
    if p["mode"] != "subscription":
        raise bad_param("The sandbox supports only `mode=subscription`.", "mode")
    if not p.get("line_items"):
        raise bad_param("Missing required param: line_items.", "line_items")
    if p.get("customer") and p.get("customer_email"):
        raise bad_param(
            "You may only specify one of these parameters: customer, customer_email.",
            "customer_email",
        )
    now = ctx.now
    expires_at = p.get("expires_at") or now + MAX_EXPIRY
    if expires_at > now + MAX_EXPIRY:
        raise bad_param(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            "expires_at",
        )
    if expires_at < now + MIN_EXPIRY:
        raise bad_param(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
            "creation.",
            "expires_at",
        )
    customer = get_customer(ctx, p["customer"], "customer") if p.get("customer") else None
    items: list[Obj] = []
    for index, spec in enumerate(p["line_items"]):
        price = get_price(ctx, spec["price"], f"line_items[{index}][price]")
        if price["type"] != "recurring":
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                f"line_items[{index}][price]",
            )
        amount = price["unit_amount"] * spec["quantity"]
        items.append(
            {
                "id": new_id("li"),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": billing.product_name(ctx, price["product"]),
                "price": copy.deepcopy(price),
                "quantity": spec["quantity"],
            }
        )
    total = sum(item["amount_total"] for item in items)
    session_id = new_id("cs")
    data = p.get("subscription_data") or {}
    session: Obj = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": p.get("allow_promotion_codes"),
        "allowed_payment_method_types": p.get("allowed_payment_method_types"),
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": p.get("billing_address_collection"),
        "cancel_url": p.get("cancel_url"),
        "client_reference_id": p.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": items[0]["currency"],
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer["id"] if customer else None,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": p.get("customer_email"),
        "discounts": [],
        "expires_at": expires_at,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": p.get("locale"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "mode": "subscription",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": p.get("payment_method_collection") or "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": p.get("allowed_payment_method_types") or ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": p.get("submit_type"),
        "subscription": None,
        "success_url": p.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": p.get("ui_mode") or "hosted",
        "url": f"{ctx.url_base}/_sandbox/pages/checkout/{session_id}",
        "wallet_options": None,
    }
    ctx.store.add(
        session,
        {
            "line_items": items,
            "subscription_metadata": apply_metadata({}, data.get("metadata")),
            "subscription_description": data.get("description"),
        },
    )
    ctx.created_id = session_id
    return session


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_session(ctx, ctx.path["id"])


def list_line_items(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {}, listing=True)
    session = get_session(ctx, ctx.path["id"])
    items = line_items(ctx, session)
    page = paginate(items[::-1], p, f"/v1/checkout/sessions/{session['id']}/line_items")
    page["data"] = page["data"][::-1]
    return page


def expire_session(ctx: Ctx, session: Obj) -> Obj:
    """Open -> expired (`checkout.session.expired`)."""
    if session["status"] != "open":
        raise invalid(
            f'Only Checkout Sessions with a status in ["open"] can be expired; this one is '
            f"{session['status']}.",
            "session",
        )
    session["status"] = "expired"
    session["url"] = None
    ctx.emit("checkout.session.expired", session)
    return session


def expire(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return expire_session(ctx, get_session(ctx, ctx.path["id"]))


def success_redirect(session: Obj) -> str | None:
    """Where the customer goes after paying, `{CHECKOUT_SESSION_ID}` filled in like Stripe."""
    url = session.get("success_url") or session.get("return_url")
    return None if url is None else str(url).replace("{CHECKOUT_SESSION_ID}", session["id"])


def pay_session(ctx: Ctx, session: Obj, token: str) -> Obj:
    """What the hosted page's pay button does; a decline leaves the session open (402)."""
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
    hidden = ctx.store.hidden_of(session["id"])
    customer = ctx.store.get(session["customer"], "customer") if session["customer"] else None
    if customer is None:
        email = session["customer_email"] or f"checkout.{session['id'][-8:].lower()}@example.com"
        customer = new_customer(ctx, email=email)
        ctx.store.add(customer)
        ctx.emit("customer.created", customer)
    pm = payment_method_from_token(token, new_id("pm"), ctx.now)
    ctx.store.add(pm, {"token": token})
    payment_methods.attach(ctx, pm, customer["id"])
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
    hidden["payment_method_token"] = token
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


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "customer": Str(),
            "subscription": Str(),
            "status": Enum("complete", "expired", "open"),
            "payment_intent": Str(),
            "payment_link": Str(),
            "created": Created(),
            "customer_details": Hash({"email": Str()}),
        },
        listing=True,
    )
    email = (p.get("customer_details") or {}).get("email")

    def wanted(s: Obj) -> bool:
        return (
            (p.get("customer") is None or s["customer"] == p["customer"])
            and (p.get("subscription") is None or s["subscription"] == p["subscription"])
            and (p.get("status") is None or s["status"] == p["status"])
            and (email is None or (s["customer_details"] or {}).get("email") == email)
            and created_matches(s["created"], p.get("created"))
        )

    return paginate(
        filter(wanted, ctx.store.newest_first("checkout.session")), p, "/v1/checkout/sessions"
    )
