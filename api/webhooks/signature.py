"""`Stripe-Signature` verification against every configured signing secret.

Stripe signs each endpoint's events with that endpoint's secret: the platform endpoint,
the Connect endpoint and, during a rotation, the old and the new secret all have to be
accepted by one route. The `stripe` library does the cryptography.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import stripe

TOLERANCE_SECONDS = 300

SignatureProblem = Literal[
    "missing_header",
    "malformed_header",
    "no_match",
    "stale_timestamp",
    "future_timestamp",
    "no_secrets_configured",
]

# How bad each problem is as a diagnosis: a stale timestamp means a secret matched (a
# replay or a skewed clock); a malformed header matched nothing at all.
_PRECEDENCE: dict[SignatureProblem, int] = {
    "future_timestamp": 3,
    "stale_timestamp": 3,
    "no_match": 2,
    "malformed_header": 1,
}


class InvalidSignature(Exception):
    """The signature is missing or matches none of the secrets; `problem` says how."""

    def __init__(self, problem: SignatureProblem) -> None:
        super().__init__(problem)
        self.problem: SignatureProblem = problem


def _classify(error: stripe.SignatureVerificationError) -> SignatureProblem:
    message = str(error)
    if "tolerance" in message:
        return "stale_timestamp"
    if "matching the expected signature" in message:
        return "no_match"
    return "malformed_header"


def verify_signature(
    payload: str,
    header: str | None,
    secrets: Sequence[str],
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Return when any secret verifies `payload`; raise :class:`InvalidSignature` otherwise."""
    if not secrets:
        raise InvalidSignature("no_secrets_configured")
    if not header:
        raise InvalidSignature("missing_header")
    worst: SignatureProblem = "malformed_header"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as error:
            problem = _classify(error)
            if _PRECEDENCE[problem] > _PRECEDENCE[worst]:
                worst = problem
            continue
        if _signed_at(header) > time.time() + tolerance:
            # The library bounds only the past; a timestamp beyond the tolerance ahead
            # would keep the signed request replayable until that time comes.
            raise InvalidSignature("future_timestamp")
        return
    raise InvalidSignature(worst)


def _signed_at(header: str) -> int:
    """The `t=` of a header the library has just verified (so it has one, an integer)."""
    for item in header.split(","):
        name, _, value = item.partition("=")
        if name == "t":
            return int(value)
    raise InvalidSignature("malformed_header")  # pragma: no cover - verified above
