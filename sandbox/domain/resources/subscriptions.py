"""Subscriptions: create (charging the first invoice), retrieve, update (price changes
with proration behaviour, `cancel_at_period_end`), cancel, list."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, bad_param, invalid, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, paginate
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
from sandbox.domain.resources.customers import get_customer
from sandbox.domain.resources.prices import get_price

PRORATION = Enum("always_invoice", "create_prorations", "none")
PAYMENT_BEHAVIOR = Enum(
    "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
)
CANCELLATION = Hash(
    {
        "comment": Str(),
        "feedback": Enum(
            "customer_service",
            "low_quality",
            "missing_features",
            "other",
            "switched_service",
            "too_complex",
            "too_expensive",
            "unused",
        ),
    }
)

CREATE_FIELDS = {
    "customer": Str(),
    "items": ListOf(
        Hash(
            {
                "price": Str(),
                "quantity": Int(minimum=0),
                "metadata": Metadata(),
                "tax_rates": Free(),
                "discounts": Free(),
            },
            required=["price"],
        )
    ),
    "default_payment_method": Str(),
    "metadata": Metadata(),
    "proration_behavior": PRORATION,
    "payment_behavior": PAYMENT_BEHAVIOR,
    "cancel_at_period_end": Bool(),
    "description": Str(500),
    "collection_method": Enum("charge_automatically", "send_invoice"),
    "off_session": Bool(),
    "payment_settings": Free(),
    "currency": Str(),
    "automatic_tax": Free(),
    "default_tax_rates": Free(),
}


def get_subscription(ctx: Ctx, sub_id: str, param: str = "id") -> Obj:
    sub = ctx.store.get(sub_id, "subscription")
    if sub is None:
        raise no_such("subscription", sub_id, param)
    return sub


def recurring_price(ctx: Ctx, price_id: str, param: str) -> Obj:
    price = get_price(ctx, price_id, param)
    if price["type"] != "recurring":
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            param,
        )
    if not price["active"]:
        raise invalid(
            "The price specified is inactive. This field only accepts active prices.", param
        )
    return price


def decline_error(decline: Any) -> StripeError:
    return billing.payment_error(decline)


def _behavior(p: Obj) -> str:
    """The create's `payment_behavior`, once the parameters the sandbox refuses are out."""
    if not p["items"]:
        raise bad_param("Missing required param: items.", "items")
    if p.get("collection_method") == "send_invoice":
        raise bad_param(
            "The sandbox supports only collection_method=charge_automatically.", "collection_method"
        )
    behavior = str(p.get("payment_behavior") or "allow_incomplete")
    if behavior == "pending_if_incomplete":
        raise bad_param(
            "You can only pass `payment_behavior=pending_if_incomplete` when updating a "
            "subscription.",
            "payment_behavior",
        )
    return behavior


def _lines(ctx: Ctx, specs: list[Obj]) -> list[tuple[Obj, int, Obj]]:
    """Price, quantity and metadata per item; every price on one interval and currency."""
    lines = []
    for index, spec in enumerate(specs):
        price = recurring_price(ctx, spec["price"], f"items[{index}][price]")
        quantity = 1 if spec.get("quantity") is None else spec["quantity"]
        lines.append((price, quantity, apply_metadata({}, spec.get("metadata"))))
    interval = billing.interval_of(lines[0][0])
    for index, (price, _, _) in enumerate(lines):
        if billing.interval_of(price) != interval or price["currency"] != lines[0][0]["currency"]:
            raise invalid(
                "All prices on a subscription must have the same `recurring.interval`, "
                "`recurring.interval_count` and currency.",
                f"items[{index}][price]",
            )
    return lines


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS, required=["customer", "items"])
    behavior = _behavior(p)
    customer = get_customer(ctx, p["customer"], "customer")
    lines = _lines(ctx, p["items"])
    default_pm = None
    if p.get("default_payment_method"):
        default_pm = payment_methods.require_attached(
            ctx, p["default_payment_method"], customer["id"], "default_payment_method"
        )["id"]
    sub = billing.new_subscription(
        ctx,
        customer,
        lines,
        metadata=apply_metadata({}, p.get("metadata")),
        default_payment_method=default_pm,
        description=p.get("description"),
        cancel_at_period_end=bool(p.get("cancel_at_period_end")),
    )
    total = sum(price["unit_amount"] * qty for price, qty, _ in lines)
    pm_id = billing.payment_method_for(ctx, sub) if default_pm is None else default_pm
    decline = None
    if total > 0 and behavior != "default_incomplete":
        # Nobody is at hand to authenticate during an API call: such a card waits.
        decline = payment_methods.charge_outcome(ctx, pm_id, off_session=True)
        if decline is not None and (behavior == "error_if_incomplete" or pm_id is None):
            raise decline_error(decline)
    if total == 0 or (decline is None and behavior != "default_incomplete"):
        sub["status"] = "active"
    inv = billing.build_invoice(
        ctx, sub, billing_reason="subscription_create", period_start=ctx.now, period_end=ctx.now
    )
    ctx.store.add(sub)
    ctx.created_id = sub["id"]
    ctx.emit("customer.subscription.created", sub)
    billing.issue(ctx, inv)
    if inv["status"] == "open" and behavior != "default_incomplete":
        billing.attempt_payment(ctx, inv, pm_id, off_session=True)
    return sub


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_subscription(ctx, ctx.path["id"])


def prorate(
    ctx: Ctx,
    sub: Obj,
    item: Obj,
    old: tuple[Obj, int] | None,
    new: tuple[Obj, int] | None,
    when: int,
) -> None:
    """Invoice items for the unused time on the old price and the remaining time on the new."""
    start, end = item["current_period_start"], item["current_period_end"]
    if end <= start or when >= end:
        return
    fraction = (end - max(when, start)) / (end - start)
    day = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%d %b %Y")
    if old is not None:
        price, quantity = old
        name = billing.product_name(ctx, price["product"])
        billing.new_invoice_item(
            ctx,
            sub,
            item,
            price,
            amount=-round(price["unit_amount"] * quantity * fraction),
            quantity=quantity,
            description=f"Unused time on {quantity} \N{MULTIPLICATION SIGN} {name} after {day}",
            start=when,
            end=end,
        )
    if new is not None:
        price, quantity = new
        name = billing.product_name(ctx, price["product"])
        billing.new_invoice_item(
            ctx,
            sub,
            item,
            price,
            amount=round(price["unit_amount"] * quantity * fraction),
            quantity=quantity,
            description=f"Remaining time on {quantity} \N{MULTIPLICATION SIGN} {name} after {day}",
            start=when,
            end=end,
        )


def cancel(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params, {"invoice_now": Bool(), "prorate": Bool(), "cancellation_details": CANCELLATION}
    )
    sub = get_subscription(ctx, ctx.path["id"])
    if sub["status"] in billing.ENDED:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    if p.get("cancellation_details"):
        sub["cancellation_details"] = {**sub["cancellation_details"], **p["cancellation_details"]}
    if p.get("prorate"):
        for item in sub["items"]["data"]:
            prorate(ctx, sub, item, (item["price"], item["quantity"]), None, ctx.now)
    billing.discard_pending_update(ctx, sub, expired=False)
    billing.cancel_now(ctx, sub)
    return sub


STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "customer": Str(),
            "price": Str(),
            "status": Enum(*STATUSES),
            "created": Created(),
            "collection_method": Str(),
            "test_clock": Str(),
        },
        listing=True,
    )
    status = p.get("status")

    def wanted(sub: Obj) -> bool:
        if status is None and sub["status"] in billing.ENDED:
            return False
        if status == "ended" and sub["status"] not in billing.ENDED:
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        if p.get("price") and all(i["price"]["id"] != p["price"] for i in sub["items"]["data"]):
            return False
        if p.get("test_clock") and sub["test_clock"] != p["test_clock"]:
            return False
        return (p.get("customer") is None or sub["customer"] == p["customer"]) and created_matches(
            sub["created"], p.get("created")
        )

    return paginate(filter(wanted, ctx.store.newest_first("subscription")), p, "/v1/subscriptions")
