"""Signup against real services: the sandbox, embedded Postgres, the Temporal dev server.

Profile → customer → account in order or not at all; a crash
between "customer created" and "id saved" leaves one customer; a permanent failure
leaves nothing behind; transient faults only delay; a client retry is one signup.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from api.idempotency import stable_id
from tests.support.harness import auth
from tests.support.histories import activity_steps, record_history
from tests.support.stack import Stack
from workflows import search_attributes
from workflows.contracts.signup import (
    SIGNUP_WORKFLOW,
    SignupInput,
    SignupResult,
    signup_workflow_id,
)
from workflows.contracts.subscription import subscription_workflow_id


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def _signup(api: httpx.AsyncClient, email: str, **extra: object) -> httpx.Response:
    body = {"email": email, "username": "sam", **extra}
    response = await api.post("/v1/users", json=body, headers=auth())
    return response


async def test_signup_creates_profile_then_customer_then_account(
    stack: Stack, db_pool: asyncpg.Pool, temporal_client: Client
) -> None:
    email = _email()
    response = await _signup(stack.api, email, payouts=True)
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["status"] == "active"
    assert user["stripe_customer_id"].startswith("cus_")
    assert user["connect_account_id"].startswith("acct_")

    # Postgres side: the workflow's history orders the activities (local ones included);
    # the profile insert completed before any Stripe activity was scheduled.
    steps = await activity_steps(temporal_client, signup_workflow_id(user["id"]))
    assert steps == [
        "insert_profile",
        "read_user",
        "create_stripe_customer",
        "save_stripe_customer_id",
        "read_user",
        "create_connect_account",
        "save_connect_account_id",
        "mark_user_active",
    ]
    assert (
        await db_pool.fetchval("SELECT status FROM users WHERE id = $1", uuid.UUID(user["id"]))
        == "active"
    )
    # Stripe side: the sandbox saw the customer created before the account.
    created = [
        entry["object_id"]
        for entry in await stack.sandbox.requests()
        if entry["method"] == "POST"
        and entry["status"] == 200
        and entry["object_id"] in (user["stripe_customer_id"], user["connect_account_id"])
    ]
    assert created == [user["stripe_customer_id"], user["connect_account_id"]]
    await record_history(temporal_client, signup_workflow_id(user["id"]), "signup_happy_path")

    # The user's subscription workflow runs from now on, found by the user's id.
    subscription = await temporal_client.get_workflow_handle(
        subscription_workflow_id(user["id"])
    ).describe()
    assert subscription.status == WorkflowExecutionStatus.RUNNING
    assert subscription.typed_search_attributes.get(search_attributes.USER_ID) == user["id"]

    customer = await stack.stripe.v1.customers.retrieve_async(user["stripe_customer_id"])
    assert customer.email == email
    assert customer.metadata is not None and customer.metadata["user_id"] == user["id"]
    fetched = await stack.api.get(f"/v1/users/{user['id']}", headers=auth())
    assert fetched.json() == user


async def test_failed_profile_insert_makes_no_stripe_request(
    stack: Stack, temporal_client: Client
) -> None:
    email = _email()
    assert (await _signup(stack.api, email)).status_code == 201
    before = len(await stack.sandbox.requests())
    # Bypass the API's duplicate check: the workflow's own profile insert must refuse.
    with pytest.raises(WorkflowFailureError):
        await temporal_client.execute_workflow(
            SIGNUP_WORKFLOW,
            SignupInput(user_id=str(uuid.uuid4()), email=email, username="twin"),
            id=signup_workflow_id(str(uuid.uuid4())),
            task_queue=stack.task_queue,
            result_type=SignupResult,
        )
    assert len(await stack.sandbox.requests()) == before
    duplicate = await _signup(stack.api, email)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "email_taken"


async def test_permanent_failure_compensates_and_signup_can_be_retried(
    stack: Stack, temporal_client: Client
) -> None:
    email = _email()
    await stack.sandbox.add_fault(path="^/v1/accounts$", method="POST", status=400)
    key = f"signup-{uuid.uuid4()}"
    failed = await stack.api.post(
        "/v1/users",
        json={"email": email, "username": "sam", "payouts": True},
        headers={**auth(), "Idempotency-Key": key},
    )
    assert failed.status_code == 502, failed.text
    user_id = stable_id("test-client", key)
    await record_history(temporal_client, signup_workflow_id(user_id), "signup_compensated")
    assert failed.json()["error"]["code"] == "signup_failed"
    assert "connect_account" in failed.json()["error"]["message"]
    live = await stack.stripe.v1.customers.list_async({"email": email})
    assert live.data == []
    assert await stack.live_accounts_for(email) == []
    # A signup that did not happen gives the user no subscription workflow.
    with pytest.raises(RPCError) as missing:
        await temporal_client.get_workflow_handle(subscription_workflow_id(user_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    created = [e for e in await stack.sandbox.requests() if e["path"] == "/v1/customers"]
    assert created, "the customer was created before the account failed"

    await stack.sandbox.clear_faults()
    again = await _signup(stack.api, email, payouts=True)
    assert again.status_code == 201, again.text
    assert len((await stack.stripe.v1.customers.list_async({"email": email})).data) == 1


@pytest.mark.slow
async def test_transient_faults_only_delay_fifty_signups(stack: Stack) -> None:
    await stack.sandbox.add_fault(path="^/v1/", rate=0.15, status=500)
    await stack.sandbox.add_fault(path="^/v1/", rate=0.15, status=429)
    emails = [_email() for _ in range(50)]
    responses = await asyncio.gather(*(_signup(stack.api, email) for email in emails))
    await stack.sandbox.clear_faults()
    user_ids = [await stack.wait_for_active(response) for response in responses]
    assert len(set(user_ids)) == 50
    faulted = [e for e in await stack.sandbox.requests() if e["status"] in (429, 500)]
    assert faulted, "the faults fired"
    for email in emails:
        found = await stack.stripe.v1.customers.list_async({"email": email})
        assert len(found.data) == 1, email


async def test_same_idempotency_key_is_one_signup(stack: Stack) -> None:
    email = _email()
    headers = {**auth(), "Idempotency-Key": f"signup-{uuid.uuid4()}"}
    body = {"email": email, "username": "sam"}
    first = await stack.api.post("/v1/users", json=body, headers=headers)
    second = await stack.api.post("/v1/users", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"

    other_key = {**auth(), "Idempotency-Key": f"signup-{uuid.uuid4()}"}
    concurrent_email = _email()
    concurrent_body = {"email": concurrent_email, "username": "kim"}
    answers = await asyncio.gather(
        *(stack.api.post("/v1/users", json=concurrent_body, headers=other_key) for _ in range(4))
    )
    assert {answer.status_code for answer in answers} == {201}
    assert all(answer.json() == answers[0].json() for answer in answers)
    found = await stack.stripe.v1.customers.list_async({"email": concurrent_email})
    assert len(found.data) == 1

    reused = await stack.api.post(
        "/v1/users", json={"email": _email(), "username": "sam"}, headers=headers
    )
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_lazy_mode_leaves_the_customer_null(stack: Stack) -> None:
    email = _email()
    async with stack.api_with(signup_stripe_customer="lazy") as api:
        response = await _signup(api, email)
    assert response.status_code == 201, response.text
    assert response.json()["stripe_customer_id"] is None
    assert (await stack.stripe.v1.customers.list_async({"email": email})).data == []
