"""The Stripe catalog onramp bills with: one product per paid tier, a recurring price per
billing cycle, found by lookup key `onramp_<tier>_<cycle>` and created when absent.

`onramp dev` calls :func:`ensure_catalog` against the sandbox at start and hands the
returned map to the worker as environment variables; the benchmarks and tests call it
too. Development tooling: the service itself only reads the price ids from settings.
"""

from __future__ import annotations

from typing import Any

import stripe

# tier → (product name, monthly amount in cents); yearly is ten months' worth.
_TIERS: dict[str, tuple[str, int]] = {
    "pro": ("onramp Pro", 2_000),
    "enterprise": ("onramp Enterprise", 10_000),
}
_CYCLES = {"monthly": "month", "yearly": "year"}


def lookup_key(tier: str, cycle: str) -> str:
    return f"onramp_{tier}_{cycle}"


def env_var(tier: str, cycle: str) -> str:
    return f"STRIPE_PRICE_{tier.upper()}_{cycle.upper()}"


def _amount(tier: str, cycle: str) -> int:
    monthly = _TIERS[tier][1]
    return monthly if cycle == "monthly" else monthly * 10


def _price_params(tier: str, cycle: str, product_id: str) -> dict[str, Any]:
    return {
        "currency": "usd",
        "unit_amount": _amount(tier, cycle),
        "recurring": {"interval": _CYCLES[cycle]},
        "product": product_id,
        "lookup_key": lookup_key(tier, cycle),
        "metadata": {"onramp_tier": tier, "onramp_cycle": cycle},
    }


def _keys() -> list[str]:
    return [lookup_key(tier, cycle) for tier in _TIERS for cycle in _CYCLES]


async def ensure_catalog(client: stripe.StripeClient) -> dict[str, str]:
    """Create what is missing; return `STRIPE_PRICE_<TIER>_<CYCLE>` → price id."""
    found = await client.v1.prices.list_async(
        {"lookup_keys": _keys(), "limit": 100, "active": True}
    )
    by_key = {price.lookup_key: price.id for price in found.data if price.lookup_key}
    result: dict[str, str] = {}
    for tier, (name, _) in _TIERS.items():
        product_id: str | None = None
        for cycle in _CYCLES:
            price_id = by_key.get(lookup_key(tier, cycle))
            if price_id is None:
                if product_id is None:
                    product = await client.v1.products.create_async(
                        {"name": name, "metadata": {"onramp_tier": tier}},
                        {"idempotency_key": f"catalog:product:{tier}"},
                    )
                    product_id = product.id
                price = await client.v1.prices.create_async(
                    _price_params(tier, cycle, product_id),  # type: ignore[arg-type]
                    {"idempotency_key": f"catalog:price:{tier}:{cycle}"},
                )
                price_id = price.id
            result[env_var(tier, cycle)] = price_id
    return result
