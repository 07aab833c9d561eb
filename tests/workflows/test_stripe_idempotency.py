"""Stripe's idempotency as onramp meets it, end to end through signup and the ensure step.

- A 500 that Stripe saved under the create's key (whether or not the customer was made
  before it failed) makes onramp re-read by email and metadata before writing again
  under a new key: the user ends with exactly one customer.
- A create whose key is still in flight (409 `idempotency_key_in_use`) is retried under
  the same key until the first request's result comes back.
- A delete that failed after it deleted counts as done.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio.client import Client

from activities.stripe_customers import StripeCustomerActivities
from onramp.stripe_client import build_stripe_client
from tests.support.ensure_probe import EnsureCustomerProbe
from tests.support.harness import STRIPE_TEST_KEY, auth
from tests.support.stack import Stack
from workflows.contracts.common import DeleteStripeObjectInput


def _email() -> str:
    return f"idem-{uuid.uuid4().hex[:10]}@example.com"


async def _signup(api: httpx.AsyncClient, email: str) -> httpx.Response:
    return await api.post("/v1/users", json={"email": email, "username": "idem"}, headers=auth())


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
@pytest.mark.slow
async def test_saved_500_on_create_is_reread_and_one_customer_remains(
    stack: Stack, applied: bool
) -> None:
    await stack.sandbox.add_fault(
        path="^/v1/customers$", method="POST", status=500, saved=True, applied=applied, times=1
    )
    email = _email()
    user_id = await stack.wait_for_active(await _signup(stack.api, email))
    user = (await stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()

    customers = (await stack.stripe.v1.customers.list_async({"email": email})).data
    assert [customer.id for customer in customers] == [user["stripe_customer_id"]]

    key = f"customer:{user_id}:0"
    log = await stack.sandbox.requests()
    after = log[next(i for i, entry in enumerate(log) if entry["idempotency_key"] == key) :]
    assert (after[0]["status"], after[0]["fault"] is not None) == (500, True)
    writes = [
        (entry["idempotency_key"], entry["status"])
        for entry in after
        if entry["method"] == "POST" and str(entry["idempotency_key"]).startswith(key)
    ]
    # The saved 500 came back once (Stripe-Should-Retry: false), then onramp re-read
    # the customers list before deciding whether to write again.
    reread = next(
        i
        for i, entry in enumerate(after)
        if (entry["method"], entry["path"]) == ("GET", "/v1/customers")
    )
    if applied:
        # The re-read found the customer the failed request had made: no second write.
        assert writes == [(key, 500)]
        assert after[0]["object_id"] == user["stripe_customer_id"]
    else:
        assert writes == [(key, 500), (f"{key}/after-unknown-1", 200)]
        second = next(
            i
            for i, entry in enumerate(after)
            if entry["idempotency_key"] == f"{key}/after-unknown-1"
        )
        assert reread < second


@pytest.mark.slow
async def test_in_flight_create_is_retried_under_the_same_key(
    stack: Stack, temporal_client: Client
) -> None:
    email = _email()
    async with stack.api_with(signup_stripe_customer="lazy") as api:
        user_id = await stack.wait_for_active(await _signup(api, email))
    # The first create is held long enough for stripe's own 409 retries to run out, so
    # the second caller's activity fails with a retryable in-flight error and Temporal
    # retries it under the same key until the first request's result is saved.
    await stack.sandbox.add_fault(path="^/v1/customers$", method="POST", delay_ms=4000, times=1)
    handles = [
        await temporal_client.start_workflow(
            EnsureCustomerProbe.run,
            user_id,
            id=f"probe-{uuid.uuid4().hex[:10]}",
            task_queue=stack.task_queue,
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(handle.result() for handle in handles))
    assert results[0].stripe_id == results[1].stripe_id
    customers = (await stack.stripe.v1.customers.list_async({"email": email})).data
    assert [customer.id for customer in customers] == [results[0].stripe_id]

    key = f"customer:{user_id}:0"
    answers = [
        (entry["status"], entry["replayed"])
        for entry in await stack.sandbox.requests()
        if entry["idempotency_key"] == key
    ]
    assert (409, False) in answers
    assert answers.count((200, False)) == 1  # one create ran
    assert (200, True) in answers  # the retried caller got its result replayed


@pytest.mark.slow
async def test_delete_that_failed_after_deleting_counts_as_done(stack: Stack) -> None:
    customer = await stack.stripe.v1.customers.create_async({"email": _email()})
    await stack.sandbox.add_fault(
        path=f"^/v1/customers/{customer.id}$",
        method="DELETE",
        status=500,
        saved=True,
        applied=True,
        times=1,
    )
    activities = StripeCustomerActivities(
        build_stripe_client(STRIPE_TEST_KEY, stack.sandbox.base_url)
    )
    await activities.delete_stripe_customer(DeleteStripeObjectInput(stripe_id=customer.id))
    gone = await stack.stripe.v1.customers.retrieve_async(customer.id)
    assert getattr(gone, "deleted", False) is True
    statuses = [
        entry["status"]
        for entry in await stack.sandbox.requests()
        if entry["method"] == "DELETE" and entry["path"] == f"/v1/customers/{customer.id}"
    ]
    # The delete ran, then failed; stripe's retry found nothing left to delete (404).
    assert statuses == [500, 404]
