"""Objects planted straight into the store, as if made or changed in Stripe's dashboard
while no webhook reached anyone: no event is recorded or delivered.

Tests and benchmarks use them to put Stripe out of step with an application on purpose
(reconciliation), and to seed many objects quickly. Each call takes a JSON body and
answers a JSON-ready object; `sandbox.http.control` serves them under `/_sandbox/plant`.
"""

from __future__ import annotations

from typing import Any

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import accounts
from sandbox.domain.resources.customers import get_customer, new_customer
from sandbox.domain.resources.subscriptions import STATUSES, get_subscription, recurring_price

# At most this many objects per call (a seed of thousands takes several calls).
MAX_BATCH = 2000


def _batch(data: Obj, name: str) -> list[Obj]:
    items = data.get(name)
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
        raise bad_param(f"{name} must be a list of 1 to {MAX_BATCH} objects", name)
    if not all(isinstance(item, dict) for item in items):
        raise bad_param(f"each of {name} must be an object", name)
    return items


def _metadata(item: Obj, name: str) -> dict[str, str]:
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad_param("metadata must map strings to strings", f"{name}[metadata]")
    return dict(metadata)


def _created(ctx: Ctx, item: Obj, name: str) -> int:
    created = item.get("created", ctx.now)
    if isinstance(created, bool) or not isinstance(created, int) or created > ctx.now:
        raise bad_param("created must be a Unix time not in the future", f"{name}[created]")
    return created


def plant_customers(ctx: Ctx, data: Obj) -> Obj:
    """`{"customers": [{"email", "metadata", "created"}]}` → the new ids, in order."""
    ids: list[str] = []
    for item in _batch(data, "customers"):
        email = item.get("email")
        if email is not None and not isinstance(email, str):
            raise bad_param("email must be a string", "customers[email]")
        customer = new_customer(ctx, email=email)
        customer["metadata"] = _metadata(item, "customers")
        customer["created"] = _created(ctx, item, "customers")
        ctx.store.add(customer)
        ids.append(customer["id"])
    return {"ids": ids}


def plant_accounts(ctx: Ctx, data: Obj) -> Obj:
    """`{"accounts": [{"metadata", "created"}]}` → the new Express-like accounts' ids."""
    ids: list[str] = []
    for item in _batch(data, "accounts"):
        metadata = _metadata(item, "accounts")
        created = _created(ctx, item, "accounts")
        params: dict[str, Any] = {
            "controller": {"stripe_dashboard": {"type": "express"}},
            "metadata": metadata,
        }
        account = accounts.create(Ctx(sb=ctx.sb, params=params, base_url=ctx.base_url))
        account["created"] = created
        ids.append(account["id"])
    return {"ids": ids}


def plant_subscriptions(ctx: Ctx, data: Obj) -> Obj:
    """`{"subscriptions": [{"customer", "price", "status", "metadata", "created"}]}`:
    subscriptions in the given status with no invoice and no payment."""
    ids: list[str] = []
    for item in _batch(data, "subscriptions"):
        customer = get_customer(ctx, str(item.get("customer")), "customer")
        price = recurring_price(ctx, str(item.get("price")), "price")
        status = str(item.get("status") or "active")
        if status not in STATUSES or status in ("all", "ended"):
            raise bad_param(f"Invalid status: {status}", "status")
        sub = billing.new_subscription(
            ctx,
            customer,
            [(price, 1, {})],
            metadata=_metadata(item, "subscriptions"),
            default_payment_method=None,
        )
        sub["status"] = status
        sub["created"] = _created(ctx, item, "subscriptions")
        ctx.store.add(sub)
        ids.append(sub["id"])
    return {"ids": ids}


def change_subscription(ctx: Ctx, data: Obj) -> Obj:
    """`{"status", "price"}`: change a subscription with no event (a dropped webhook)."""
    sub = get_subscription(ctx, ctx.path["id"])
    if "status" in data:
        status = str(data["status"])
        if status not in STATUSES or status in ("all", "ended"):
            raise bad_param(f"Invalid status: {status}", "status")
        sub["status"] = status
    if "price" in data:
        price = recurring_price(ctx, str(data["price"]), "price")
        for item in sub["items"]["data"]:
            billing.set_item_price(item, price)
    return sub


def delete_object(ctx: Ctx, data: Obj) -> Obj:
    """Remove any object with no event (Stripe then answers it as deleted or unknown)."""
    object_id = ctx.path["id"]
    stub = ctx.store.delete(object_id)
    if stub is None:
        raise no_such("object", object_id, "id")
    return {"id": object_id, "deleted": True}
