"""Stripe subscriptions and invoices reduced to the snapshots the workflows decide on.

Object shapes follow the library's API version: the period end lives on the
subscription item, an invoice's subscription under `parent.subscription_details`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe

from workflows.contracts.subscription import InvoiceSnapshot, SubscriptionSnapshot


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def id_of(value: Any) -> str | None:
    """The id of an expandable field: the id itself, or the expanded object's id."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain nested dicts (StripeObject refuses dict methods)."""
    if isinstance(obj, stripe.StripeObject):
        plain: dict[str, Any] = obj.to_dict()
        return plain
    return dict(obj)


def subscription_snapshot(obj: Any) -> SubscriptionSnapshot:
    """Reduce a Stripe subscription to what the tier function needs."""
    sub = plain(obj)
    items = sub["items"]["data"] if sub.get("items") else []
    item = items[0] if items else None
    price = item["price"] if item is not None else None
    interval = None
    if price is not None and price.get("recurring"):
        interval = price["recurring"].get("interval")
    cycle = {"month": "monthly", "year": "yearly"}.get(interval or "")
    pending = sub.get("pending_update") or {}
    pending_items = pending.get("subscription_items") or []
    pending_price = pending_items[0].get("price") if pending_items else None
    metadata = sub.get("metadata") or {}
    return SubscriptionSnapshot(
        subscription_id=sub["id"],
        customer_id=id_of(sub["customer"]) or "",
        status=sub["status"],
        created=_time(sub["created"]) or datetime.fromtimestamp(0, UTC),
        item_id=item["id"] if item is not None else None,
        price_id=price["id"] if price is not None else None,
        price_lookup_key=price.get("lookup_key") if price is not None else None,
        billing_cycle=cycle,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        current_period_end=_time(item.get("current_period_end")) if item is not None else None,
        latest_invoice_id=id_of(sub.get("latest_invoice")),
        default_payment_method_id=id_of(sub.get("default_payment_method")),
        pending_price_id=id_of(pending_price) if pending else None,
        pending_update_expires_at=_time(pending.get("expires_at")) if pending else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def invoice_snapshot(obj: Any) -> InvoiceSnapshot:
    inv = plain(obj)
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return InvoiceSnapshot(
        invoice_id=inv["id"],
        customer_id=id_of(inv["customer"]) or "",
        subscription_id=id_of(details.get("subscription")),
        number=inv.get("number"),
        status=inv["status"],
        currency=inv["currency"],
        amount_due=inv.get("amount_due") or 0,
        amount_paid=inv.get("amount_paid") or 0,
        amount_remaining=inv.get("amount_remaining") or 0,
        total=inv.get("total") or 0,
        period_start=_time(inv.get("period_start")),
        period_end=_time(inv.get("period_end")),
        hosted_invoice_url=inv.get("hosted_invoice_url"),
        invoice_pdf=inv.get("invoice_pdf"),
        created=_time(inv["created"]) or datetime.fromtimestamp(0, UTC),
        billing_reason=inv.get("billing_reason"),
    )
