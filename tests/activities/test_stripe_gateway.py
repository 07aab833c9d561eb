"""The Stripe gateway's reading of Stripe's answers: saved 500s, in-flight keys, rate
limits (unit tests: Stripe's errors built as the library builds them)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import stripe
from temporalio.testing import ActivityEnvironment

from activities.stripe_gateway import (
    convert_stripe_error,
    is_replayed_server_error,
    write_once,
)
from workflows import errors


def _api_error(status: int, **headers: str) -> stripe.StripeError:
    return stripe.APIError("boom", http_status=status, headers=headers)


def test_saved_500s_are_told_from_others() -> None:
    assert is_replayed_server_error(_api_error(500, **{"Idempotent-Replayed": "true"}))
    assert is_replayed_server_error(_api_error(500, **{"Stripe-Should-Retry": "false"}))
    assert not is_replayed_server_error(_api_error(500))
    assert not is_replayed_server_error(_api_error(503, **{"Stripe-Should-Retry": "true"}))
    assert not is_replayed_server_error(
        stripe.RateLimitError(
            "slow down", http_status=429, headers={"Stripe-Should-Retry": "false"}
        )
    )


def test_in_flight_key_is_retryable() -> None:
    error = stripe.IdempotencyError("in progress", http_status=409, code="idempotency_key_in_use")
    converted = convert_stripe_error(error, "customers.create")
    assert converted.type == errors.STRIPE_IDEMPOTENCY_IN_FLIGHT
    assert not converted.non_retryable


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.5, 1.0), (3, 2.0, 4.0), (9, 15, 30)])
async def test_rate_limited_attempt_backs_off_with_jitter(
    attempt: int, low: float, high: float
) -> None:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)

    async def limited() -> None:
        error = stripe.RateLimitError("slow down", http_status=429, code="rate_limit")
        raise convert_stripe_error(error, "customers.list")

    with pytest.raises(Exception) as excinfo:
        await environment.run(limited)
    converted = excinfo.value
    assert getattr(converted, "type", None) == errors.STRIPE_RATE_LIMITED
    delay = getattr(converted, "next_retry_delay", None)
    assert isinstance(delay, timedelta)
    assert low <= delay.total_seconds() <= high


async def test_write_once_rereads_then_writes_under_a_new_key() -> None:
    keys: list[str] = []

    async def write(key: str) -> str:
        keys.append(key)
        if len(keys) == 1:
            raise _api_error(500, **{"Stripe-Should-Retry": "false"})
        return f"made with {key}"

    async def nothing_found() -> str | None:
        return None

    assert await write_once("x.create", "op/1", write, nothing_found) == (
        "made with op/1/after-unknown-1"
    )
    assert keys == ["op/1", "op/1/after-unknown-1"]

    keys.clear()

    async def found() -> str | None:
        return "made by the first attempt"

    assert await write_once("x.create", "op/2", write, found) == "made by the first attempt"
    assert keys == ["op/2"]
