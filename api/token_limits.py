"""Rate limits of the routes a token, a Connect state or a session id opens without an
API key (`/v1/onboard`, `/v1/connect/refresh|return`, `/v1/checkout/return`).

Each of them may cost a Stripe call and workflow history, so they are counted per
token (by its digest, never the token) and per client address, in fixed one-minute
windows held in this process. The counters are in memory on purpose: they are an edge
guard, not business state, and the API writes Postgres only for its own edge records
(docs/DESIGN.md). The limit is therefore per API process (N replicas admit N times the
configured rate), and the table is bounded: at most `max_keys` keys are kept, the oldest
window dropped first.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request

from api.errors import ApiError, ErrorResponse

WINDOW_SECONDS = 60.0

# The OpenAPI entry of the 429 these routes may answer.
RATE_LIMITED_RESPONSE: dict[str, object] = {
    "model": ErrorResponse,
    "description": "Too many requests for this link or from this address; see Retry-After",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}


class WindowCounter:
    """Fixed-window request counts per key, bounded in size."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def hit(self, key: str, limit: int) -> float | None:
        """Count one request; None when within `limit`, else seconds until the window ends."""
        now = self._clock()
        started, count = self._counts.pop(key, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, count = now, 0
        count += 1
        self._counts[key] = (started, count)
        while len(self._counts) > self._max_keys:
            self._counts.popitem(last=False)
        if count > limit:
            return max(WINDOW_SECONDS - (now - started), 1.0)
        return None


class LastSeen:
    """When a key was last let through, so a re-read is asked at most once per interval."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def due(self, key: str, interval: float) -> bool:
        """True (and remembered) when `key` was not let through within `interval` seconds."""
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last < interval:
            return False
        self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)
        return True


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _limits(request: Request) -> WindowCounter:
    counter: WindowCounter | None = getattr(request.app.state, "token_route_counter", None)
    if counter is None:
        counter = WindowCounter()
        request.app.state.token_route_counter = counter
    return counter


def check(request: Request, route: str, secret_value: str) -> None:
    """429 in the error shape, with Retry-After, when the token or the address has used
    its minute; the token is counted by digest only."""
    settings = request.app.state.settings
    counter = _limits(request)
    waits = [
        counter.hit(f"addr:{client_address(request)}", settings.address_route_limit_per_minute),
        counter.hit(f"{route}:{digest(secret_value)}", settings.token_route_limit_per_minute),
    ]
    refused = [wait for wait in waits if wait is not None]
    if refused:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests for this link; try again shortly",
            headers={"Retry-After": str(math.ceil(max(refused)))},
        )


def reread_due(request: Request, key: str, interval: float) -> bool:
    seen: LastSeen | None = getattr(request.app.state, "token_route_last_seen", None)
    if seen is None:
        seen = LastSeen()
        request.app.state.token_route_last_seen = seen
    return seen.due(digest(key), interval)
