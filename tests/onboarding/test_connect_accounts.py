"""The Connect account activities against the sandbox: how the account is created, how
an unknown outcome finds it again, and deletes that count a 403 as gone."""

from __future__ import annotations

import uuid

import pytest
import stripe

from activities.stripe_customers import StripeCustomerActivities
from onramp.stripe_client import build_stripe_client
from tests.support.harness import STRIPE_TEST_KEY
from workflows.contracts.common import CreateStripeObjectInput, DeleteStripeObjectInput


def _activities(sandbox_url: str, *capabilities: str) -> StripeCustomerActivities:
    client = build_stripe_client(STRIPE_TEST_KEY, sandbox_url)
    if capabilities:
        return StripeCustomerActivities(client, connect_capabilities=capabilities)
    return StripeCustomerActivities(client)


def _request(generation: int = 0) -> CreateStripeObjectInput:
    user_id = str(uuid.uuid4())
    return CreateStripeObjectInput(
        user_id=user_id, email=f"acct-{user_id[:8]}@example.com", generation=generation
    )


async def test_account_is_created_with_controller_properties_and_configured_capabilities(
    sandbox_url: str,
) -> None:
    activities = _activities(sandbox_url, "transfers")
    request = _request(generation=2)

    account_id = await activities.create_connect_account(request)

    account = await activities.stripe.v1.accounts.retrieve_async(account_id)
    assert account.controller is not None
    assert account.controller.stripe_dashboard is not None
    assert account.controller.stripe_dashboard.type == "express"
    assert account.controller.fees is not None and account.controller.fees.payer == "application"
    assert account.controller.losses is not None
    assert account.controller.losses.payments == "application"
    assert account.controller.requirement_collection == "stripe"
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"transfers": "inactive"}
    assert account.email == request.email
    assert account.to_dict()["metadata"] == {"user_id": request.user_id, "generation": "2"}
    # Same key, same parameters: every caller gets the same account back.
    assert await activities.create_connect_account(request) == account_id


async def test_an_unknown_outcome_is_looked_up_by_user_and_generation(sandbox_url: str) -> None:
    activities = _activities(sandbox_url)
    request = _request()
    account_id = await activities.create_connect_account(request)

    found = await activities._find_account(request)

    assert found is not None and found.id == account_id
    other_generation = request.model_copy(update={"generation": 1})
    assert await activities._find_account(other_generation) is None
    other_user = _request()
    assert await activities._find_account(other_user) is None


async def test_deleting_an_account_twice_completes(sandbox_url: str) -> None:
    activities = _activities(sandbox_url)
    account_id = await activities.create_connect_account(_request())

    await activities.delete_connect_account(DeleteStripeObjectInput(stripe_id=account_id))
    # Stripe answers the second delete 403 account_invalid: gone counts as deleted, so
    # a compensation that runs twice completes.
    await activities.delete_connect_account(DeleteStripeObjectInput(stripe_id=account_id))

    with pytest.raises(stripe.PermissionError) as gone:
        await activities.stripe.v1.accounts.retrieve_async(account_id)
    assert gone.value.http_status == 403
