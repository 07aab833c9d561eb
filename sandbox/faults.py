"""Injected faults: a share of matching requests answered with an error and/or delayed.

A fault is decided before the request is processed, so a faulted request changes
nothing and is not saved under its idempotency key (a retry with the same key runs for
real). What the error says decides whether `stripe` retries it by itself: 500/503 yes;
429 only as a "lock timeout" (`Stripe-Should-Retry: true`), never a plain rate limit.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from sandbox.errors import StripeError, bad_param
from sandbox.jsontypes import Obj

STATUSES = (400, 402, 429, 500, 503)


@dataclass
class Fault:
    id: str
    path: re.Pattern[str]
    method: str | None
    rate: float
    status: int | None
    lock_timeout: bool
    delay_ms: int
    times: int | None
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        return self.path.search(path) is not None

    def describe(self) -> Obj:
        return {
            "id": self.id,
            "path": self.path.pattern,
            "method": self.method,
            "rate": self.rate,
            "status": self.status,
            "lock_timeout": self.lock_timeout,
            "delay_ms": self.delay_ms,
            "times": self.times,
            "fired": self.fired,
        }

    def error(self) -> StripeError | None:
        """The error this fault answers with (None for a delay-only fault)."""
        note = f" (sandbox fault {self.id})"
        if self.status is None:
            return None
        if self.status == 429 and self.lock_timeout:
            return StripeError(
                429,
                "invalid_request_error",
                "This object cannot be accessed right now because another API request or "
                "Stripe process is currently accessing it. If you see this error "
                "intermittently, retry the request." + note,
                code="lock_timeout",
                headers={"Stripe-Should-Retry": "true"},
            )
        if self.status == 429:
            return StripeError(
                429,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits." + note,
                code="rate_limit",
            )
        if self.status == 400:
            return StripeError(400, "invalid_request_error", "Injected bad request" + note)
        if self.status == 402:
            return StripeError(
                402,
                "card_error",
                "Your card was declined." + note,
                code="card_declined",
                decline_code="generic_decline",
            )
        return StripeError(
            self.status,
            "api_error",
            "An unknown error occurred, please try again later." + note,
        )


class Faults:
    """The active fault rules; the first one that fires decides a request's fate."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._next = 0

    def add(self, spec: Obj) -> Fault:
        path = spec.get("path", ".*")
        try:
            pattern = re.compile(str(path))
        except re.error as exc:
            raise bad_param(f"Invalid path regex: {exc}", "path") from None
        rate = float(spec.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise bad_param("rate must be between 0.0 and 1.0", "rate")
        status = spec.get("status")
        if status is not None and int(status) not in STATUSES:
            raise bad_param(f"status must be one of {list(STATUSES)}", "status")
        delay_ms = int(spec.get("delay_ms") or 0)
        if status is None and not delay_ms:
            status = 500
        method = spec.get("method")
        times = spec.get("times")
        seed = spec.get("seed")
        self._next += 1
        fault = Fault(
            id=f"fault_{self._next}",
            path=pattern,
            method=str(method).upper() if method else None,
            rate=rate,
            status=int(status) if status is not None else None,
            lock_timeout=bool(spec.get("lock_timeout", False)),
            delay_ms=delay_ms,
            times=int(times) if times is not None else None,
            rng=random.Random(seed),
        )
        self.rules.append(fault)
        return fault

    def decide(self, method: str, path: str) -> Fault | None:
        for fault in self.rules:
            if fault.matches(method, path) and fault.rng.random() < fault.rate:
                fault.fired += 1
                return fault
        return None

    def clear(self) -> None:
        self.rules = []

    def remove(self, fault_id: str) -> bool:
        before = len(self.rules)
        self.rules = [f for f in self.rules if f.id != fault_id]
        return len(self.rules) != before
