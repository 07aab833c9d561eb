"""The one way onramp builds its Stripe client, and the API version it speaks.

The API version is pinned here and sent explicitly on every request, so upgrading the
`stripe` library (bounded below its next major in pyproject.toml) never changes the
shapes production reads; the sandbox serves the same version and a test fails when the
installed library's default differs, so moving the version is a deliberate change.

Every request, retries included, waits for its turn at a pacer shared by all clients of
one Stripe account in the process, so a burst of activities never exceeds Stripe's rate
limit (test mode 25, live mode 100 requests per second per account): Stripe advises
throttling on the client with a token bucket rather than retrying 429s.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

import stripe

STRIPE_API_VERSION = "2026-10-28.endive"

# A share of Stripe's per-account limits (test mode 25/s, live mode 100/s), leaving room
# for the dashboard, a second process and network jitter bunching requests together.
DEFAULT_REQUESTS_PER_SECOND_TEST = 20.0
DEFAULT_REQUESTS_PER_SECOND_LIVE = 80.0
BURST = 5
"""Requests that may start at once after a quiet spell (far below the 25 Stripe holds)."""


class RequestPacer:
    """A token bucket on the client side (the generic cell rate algorithm): on average
    `rate` requests per second, at most `BURST` at once. Each caller reserves the next
    free slot under a lock and waits for it, so the pacer serves threads and event
    loops alike and callers start in the order they asked."""

    def __init__(self, rate: float, burst: int = BURST) -> None:
        self._lock = threading.Lock()
        self._theoretical_arrival = 0.0
        self.rate = rate
        self.burst = burst

    def reserve(self) -> float:
        """Claim the next slot; seconds to wait before sending."""
        interval = 1.0 / self.rate
        with self._lock:
            now = time.monotonic()
            arrival = max(self._theoretical_arrival, now)
            start = max(now, arrival - (self.burst - 1) * interval)
            self._theoretical_arrival = arrival + interval
            return start - now

    async def wait_async(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)


_pacers: dict[tuple[str, str], RequestPacer] = {}
_pacers_lock = threading.Lock()


def shared_pacer(secret_key: str, api_base: str | None, rate: float) -> RequestPacer:
    """The process's pacer for one Stripe account (the key, hashed, and the base URL)."""
    account = (hashlib.sha256(secret_key.encode()).hexdigest(), api_base or "")
    with _pacers_lock:
        pacer = _pacers.get(account)
        if pacer is None:
            pacer = _pacers[account] = RequestPacer(rate)
        pacer.rate = min(pacer.rate, rate)
        return pacer


class PacedHTTPXClient(stripe.HTTPXClient):
    """`stripe`'s httpx client, each request (and each of its retries) paced."""

    def __init__(self, pacer: RequestPacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer

    # The same signature as HTTPXClient.request, which already differs from HTTPClient's.
    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self.pacer.wait()
        return super().request(method, url, headers, post_data)

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        await self.pacer.wait_async()
        return await super().request_async(method, url, headers, post_data)


def default_requests_per_second(secret_key: str) -> float:
    live = secret_key.startswith(("sk_live_", "rk_live_"))
    return DEFAULT_REQUESTS_PER_SECOND_LIVE if live else DEFAULT_REQUESTS_PER_SECOND_TEST


def build_stripe_client(
    secret_key: str,
    api_base: str | None = None,
    *,
    max_network_retries: int = 2,
    max_requests_per_second: float | None = None,
) -> stripe.StripeClient:
    """The official async-capable client; only the base URL differs between the sandbox
    and Stripe.

    The library retries connection errors, 5xx and 429s that say `Stripe-Should-Retry`
    on its own (under the same idempotency key); a plain rate-limit 429 is left to the
    caller's retry policy. Requests are paced at `max_requests_per_second` (default: a
    share of the key's mode's limit), shared with every client of the same account.
    """
    rate = max_requests_per_second or default_requests_per_second(secret_key)
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": api_base} if api_base else None,
        http_client=PacedHTTPXClient(
            shared_pacer(secret_key, api_base, rate), timeout=30, allow_sync_methods=True
        ),
        max_network_retries=max_network_retries,
    )
