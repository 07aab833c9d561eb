"""The upgrade's shared ensure step compensates a failed save.

Saving the new customer id fails once, permanently (a same-named activity that refuses
the first call): the customer just created is deleted in the sandbox and the
generation bumped, so the retried upgrade creates exactly one live customer under a
new idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.users import UserActivities
from tests.subscription.conftest import BillingStack
from tests.support.harness import auth
from workflows.contracts.common import SaveStripeIdInput, SaveStripeIdResult


class FailFirstSave:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.real = UserActivities(pool)
        self.failed: list[str] = []

    @activity.defn(name="save_stripe_customer_id")
    async def save_stripe_customer_id(self, request: SaveStripeIdInput) -> SaveStripeIdResult:
        if not self.failed:
            self.failed.append(request.stripe_id)
            raise ApplicationError("saving refused (test)", type="TestRefused", non_retryable=True)
        result: SaveStripeIdResult = await self.real.save_stripe_customer_id(request)
        return result


@pytest.fixture
def failing_save(db_pool: asyncpg.Pool) -> FailFirstSave:
    return FailFirstSave(db_pool)


@pytest.fixture
def activity_overrides(failing_save: FailFirstSave) -> list[Callable[..., Any]]:
    return [failing_save.save_stripe_customer_id]


@pytest.mark.slow
async def test_failed_save_deletes_the_customer_and_retry_makes_one(
    billing_stack: BillingStack, failing_save: FailFirstSave, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    path = f"/v1/users/{user_id}/subscription/upgrade"
    failed = await stack.api.post(
        path, json={"tier": "pro", "payment_method": "pm_card_visa"}, headers=auth()
    )
    assert failed.status_code == 502, failed.text
    assert len(failing_save.failed) == 1
    orphan = failing_save.failed[0]
    deleted = await stack.stripe.v1.customers.retrieve_async(orphan)
    assert getattr(deleted, "deleted", False) is True
    row = await db_pool.fetchrow(
        "SELECT stripe_customer_id, stripe_customer_generation FROM users WHERE id = $1",
        uuid.UUID(user_id),
    )
    assert row is not None
    assert (row["stripe_customer_id"], row["stripe_customer_generation"]) == (None, 1)
    assert (await stack.subscription(user_id))["stripe_subscription_id"] is None

    retried = await stack.api.post(
        path, json={"tier": "pro", "payment_method": "pm_card_visa"}, headers=auth()
    )
    assert retried.status_code == 200, retried.text
    customer_id = retried.json()["stripe_customer_id"]
    assert customer_id != orphan and retried.json()["tier"] == "pro"
    email = (await stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()["email"]
    live = await stack.stripe.v1.customers.list_async({"email": email})
    assert [customer.id for customer in live.data] == [customer_id]
    creates = [
        entry
        for entry in await stack.sandbox.requests()
        if entry["path"] == "/v1/customers" and entry["method"] == "POST"
        and (entry["idempotency_key"] or "").startswith(f"customer:{user_id}:")
    ]  # fmt: skip
    assert [entry["idempotency_key"] for entry in creates] == [
        f"customer:{user_id}:0",
        f"customer:{user_id}:1",
    ]
