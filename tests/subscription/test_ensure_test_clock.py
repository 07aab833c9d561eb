"""STRIPE_TEST_CLOCKS: the shared ensure step creates the user's test clock under its
own key, then the customer on it, so Stripe test mode can rehearse renewals on it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.subscription.conftest import BillingStack
from tests.support.harness import auth

DAY = 86_400


@pytest.fixture
def worker_overrides() -> dict[str, Any]:
    return {"stripe_test_clocks": True}


async def test_new_customer_lives_on_its_own_test_clock(billing_stack: BillingStack) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    started = await stack.api.post(
        "/v1/checkout",
        json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
        headers=auth(),
    )
    assert started.status_code == 201, started.text
    user = (await stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()
    customer = await stack.stripe.v1.customers.retrieve_async(user["stripe_customer_id"])
    assert isinstance(customer.test_clock, str)
    clock = await stack.stripe.v1.test_helpers.test_clocks.retrieve_async(customer.test_clock)
    assert clock.name == f"onramp user {user_id} generation 0"
    assert clock.frozen_time % DAY == 0  # the start of a UTC day: the same for every caller
    keys = [
        (entry["path"], entry["idempotency_key"])
        for entry in await stack.sandbox.requests()
        if (entry["idempotency_key"] or "").split(":")[1:2] == [user_id]
    ]
    assert keys == [
        ("/v1/test_helpers/test_clocks", f"test_clock:{user_id}:0"),
        ("/v1/customers", f"customer:{user_id}:0"),
    ]
