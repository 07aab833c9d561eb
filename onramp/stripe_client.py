"""The one way onramp builds its Stripe client, and the API version it speaks.

The API version is pinned here and sent explicitly on every request, so upgrading the
`stripe` library (bounded below its next major in pyproject.toml) never changes the
shapes production reads; the sandbox serves the same version and a test fails when the
installed library's default differs, so moving the version is a deliberate change.
"""

from __future__ import annotations

import stripe

STRIPE_API_VERSION = "2026-10-28.endive"


def build_stripe_client(
    secret_key: str, api_base: str | None = None, *, max_network_retries: int = 2
) -> stripe.StripeClient:
    """The official async-capable client; only the base URL differs between the sandbox
    and Stripe.

    The library retries connection errors, 5xx and 429s that say `Stripe-Should-Retry`
    on its own (under the same idempotency key); a plain rate-limit 429 is left to the
    caller's retry policy.
    """
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": api_base} if api_base else None,
        http_client=stripe.HTTPXClient(timeout=30, allow_sync_methods=True),
        max_network_retries=max_network_retries,
    )
