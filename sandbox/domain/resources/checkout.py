"""Checkout sessions (mode `subscription`, and `setup`, which only saves a payment
method): create, retrieve, line items, expire, list (paying or completing one is
`checkout_payment`)."""

from __future__ import annotations

import copy

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, invalid, no_such
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
from sandbox.domain.resources.customers import get_customer
from sandbox.domain.resources.prices import get_price
from sandbox.domain.shapes import stripe_object

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
    "currency": Str(3),
    "setup_intent_data": Hash(
        {"metadata": Metadata(), "description": Str(500), "on_behalf_of": Str()}
    ),
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


SESSION_DEFAULTS: Obj = {
    "adaptive_pricing": {"enabled": False},
    "after_expiration": None,
    "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
    "client_secret": None,
    "collected_information": None,
    "consent": None,
    "consent_collection": None,
    "currency_conversion": None,
    "custom_fields": [],
    "custom_text": {
        "after_submit": None,
        "shipping_address": None,
        "submit": None,
        "terms_of_service_acceptance": None,
    },
    "customer_account": None,
    "customer_creation": None,
    "customer_details": None,
    "discounts": [],
    "invoice": None,
    "invoice_creation": None,
    "livemode": False,
    "mode": "subscription",
    "origin_context": None,
    "payment_intent": None,
    "payment_link": None,
    "payment_method_configuration_details": None,
    "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
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
    "subscription": None,
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    "wallet_options": None,
}
"""The fields of a new session that no parameter decides."""


def _expires_at(p: Obj, now: int) -> int:
    """The session's expiry, after the checks Stripe makes on the parameters."""
    if p["mode"] == "setup":
        _check_setup(p)
    elif p["mode"] != "subscription":
        raise bad_param("The sandbox supports only `mode=subscription` and `mode=setup`.", "mode")
    elif not p.get("line_items"):
        raise bad_param("Missing required param: line_items.", "line_items")
    if p.get("customer") and p.get("customer_email"):
        raise bad_param(
            "You may only specify one of these parameters: customer, customer_email.",
            "customer_email",
        )
    expires_at: int = p.get("expires_at") or now + MAX_EXPIRY
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
    return expires_at


def _check_setup(p: Obj) -> None:
    """Stripe's rules for a setup-mode session: no line items, no subscription, and a
    currency unless the payment method types are named."""
    for name in ("line_items", "subscription_data"):
        if p.get(name):
            raise bad_param(f"You cannot pass `{name}` in `setup` mode.", name)
    if not p.get("currency") and not p.get("allowed_payment_method_types"):
        raise bad_param(
            "Missing required param: currency. `currency` is required in `setup` mode "
            "when the payment method types are not specified.",
            "currency",
        )


def _new_line_items(ctx: Ctx, specs: list[Obj]) -> list[Obj]:
    items: list[Obj] = []
    for index, spec in enumerate(specs):
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
    return items


def _session_fields(ctx: Ctx, p: Obj, session_id: str, items: list[Obj], now: int) -> Obj:
    """The fields of a new session that its parameters decide."""
    setup = p["mode"] == "setup"
    total = None if setup else sum(item["amount_total"] for item in items)
    return {
        "allow_promotion_codes": p.get("allow_promotion_codes"),
        "allowed_payment_method_types": p.get("allowed_payment_method_types"),
        "amount_subtotal": total,
        "amount_total": total,
        "billing_address_collection": p.get("billing_address_collection"),
        "cancel_url": p.get("cancel_url"),
        "client_reference_id": p.get("client_reference_id"),
        "created": now,
        "currency": p.get("currency") if setup else items[0]["currency"],
        "customer_email": p.get("customer_email"),
        "locale": p.get("locale"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "mode": p["mode"],
        "payment_status": "no_payment_required" if setup else "unpaid",
        "payment_method_collection": p.get("payment_method_collection") or "always",
        "payment_method_types": p.get("allowed_payment_method_types") or ["card"],
        "submit_type": p.get("submit_type"),
        "success_url": p.get("success_url"),
        "ui_mode": p.get("ui_mode") or "hosted",
        "url": f"{ctx.url_base}/_sandbox/pages/checkout/{session_id}",
    }


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, FIELDS, required=["mode"])
    now = ctx.now
    expires_at = _expires_at(p, now)
    customer = get_customer(ctx, p["customer"], "customer") if p.get("customer") else None
    items = _new_line_items(ctx, p.get("line_items") or [])
    session_id = new_id("cs")
    data = p.get("subscription_data") or {}
    fields = _session_fields(ctx, p, session_id, items, now)
    fields["customer"] = customer["id"] if customer else None
    fields["expires_at"] = expires_at
    session = stripe_object(session_id, "checkout.session", SESSION_DEFAULTS, fields)
    ctx.store.add(
        session,
        {
            "line_items": items,
            "subscription_metadata": apply_metadata({}, data.get("metadata")),
            "subscription_description": data.get("description"),
            "setup_intent_metadata": apply_metadata(
                {}, (p.get("setup_intent_data") or {}).get("metadata")
            ),
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
