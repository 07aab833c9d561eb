"""Stripe's request rate limiter, with the limits Stripe documents for test mode.

Stripe's "Rate limits" page: a sandbox (test mode) account may make 25 API operations
per second; every endpoint (a method and path template: `GET /v1/customers/{id}` for any
id) has a default limit of 25 per second of its own, counted as well; Connect platforms
create at most 5 accounts per second in a sandbox; the Search API allows 20 reads per
second. Stripe's engineering blog ("Scaling your API with rate limiters") describes the
limiter as a token bucket; here each bucket holds one second's worth of requests and a
refused request takes no token.

A limited request answers 429 `rate_limit` with `Stripe-Rate-Limited-Reason`
(`global-rate` or `endpoint-rate`) and no `Stripe-Should-Retry`, so stripe-python does
not retry it by itself. The limiter runs before the idempotency layer (Stripe's
error-handling docs), so a limited request saves nothing under its key. Limits are per
API key, one key standing for one account, and count in real time (not sandbox time).
Stripe's concurrency limiter publishes no figures and is not modelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.domain.errors import StripeError

TEST_MODE_RATE = 25.0
"""Requests per second per account in test mode."""
ENDPOINT_RATE = 25.0
"""Default requests per second per endpoint."""
SPECIFIC_RATES: dict[tuple[str, str], float] = {
    # Connect: "Platforms can create up to 5 accounts per second in sandbox".
    ("POST", "/v1/accounts"): 5.0,
}
SEARCH_RATE = 20.0
"""Search API reads per second (any `GET .../search`)."""


@dataclass
class Bucket:
    rate: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


@dataclass
class RateLimits:
    """The buckets of every account and endpoint seen, and how often each refused."""

    rate: float = TEST_MODE_RATE
    endpoint_rate: float = ENDPOINT_RATE
    clock: Callable[[], float] = time.monotonic
    buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _endpoint_rate(self, method: str, template: str) -> float:
        specific = SPECIFIC_RATES.get((method, template))
        if specific is not None:
            return min(specific, self.endpoint_rate)
        if method == "GET" and template.endswith("/search"):
            return min(SEARCH_RATE, self.endpoint_rate)
        return self.endpoint_rate

    def _bucket(self, api_key: str, scope: str, rate: float, now: float) -> Bucket:
        bucket = self.buckets.get((api_key, scope))
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[(api_key, scope)] = Bucket(rate, rate, now)
        bucket.refill(now)
        return bucket

    def check(self, api_key: str, method: str, template: str) -> StripeError | None:
        """Take a token for this request, or the 429 Stripe answers when there is none."""
        if not self.enabled:
            return None
        now = self.clock()
        scopes = [("global-rate", self._bucket(api_key, "*", self.rate, now))]
        endpoint_rate = self._endpoint_rate(method, template)
        if endpoint_rate > 0:
            endpoint = self._bucket(api_key, f"{method} {template}", endpoint_rate, now)
            scopes.append(("endpoint-rate", endpoint))
        for reason, bucket in scopes:
            if bucket.tokens < 1:
                self.limited[reason] = self.limited.get(reason, 0) + 1
                return rate_limited(reason)
        for _, bucket in scopes:
            bucket.tokens -= 1
        return None

    def configure(self, rate: float | None = None, endpoint_rate: float | None = None) -> None:
        if rate is not None:
            self.rate = rate
        if endpoint_rate is not None:
            self.endpoint_rate = endpoint_rate
        self.buckets.clear()

    def describe(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "endpoint_rate": self.endpoint_rate,
            "specific": {f"{m} {t}": r for (m, t), r in SPECIFIC_RATES.items()},
            "search_rate": SEARCH_RATE,
            "limited": dict(self.limited),
        }

    def reset(self) -> None:
        """Full buckets and zero counts (the configured rates stay)."""
        self.buckets.clear()
        self.limited.clear()


def rate_limited(reason: str) -> StripeError:
    """Stripe's answer to a request over a rate limit."""
    return StripeError(
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers={"Stripe-Rate-Limited-Reason": reason},
    )
