"""Connect onboarding against real services.

The API is served over HTTP; the worker runs the real workflows and activities; the
sandbox speaks Stripe's API, fails on request, and sends signed Connect webhooks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest
from temporalio.client import Client

from onramp import tokens
from tests.onboarding.conftest import Served, serve_onboarding
from tests.support.harness import auth
from tests.support.histories import activity_executions, record_history
from tests.support.stack import Stack
from workflows.contracts.onboarding import onboarding_workflow_id


@pytest.fixture
async def served(stack: Stack, db_pool: asyncpg.Pool) -> Any:
    async with serve_onboarding(stack, db_pool, webhooks=True, poll_seconds=60) as served:
        yield served


def _token(issued: dict[str, Any]) -> str:
    return str(parse_qs(urlparse(issued["url"]).query)["token"][0])


async def _open(served: Served, token: str, *, json_answer: bool = False) -> Any:
    headers = {"Accept": "application/json"} if json_answer else {}
    return await served.http.get("/v1/onboard", params={"token": token}, headers=headers)


async def _accounts(served: Served, email: str) -> list[Any]:
    return await served.stack.live_accounts_for(email)


@pytest.mark.slow
async def test_stripe_outage_answers_502_and_keeps_the_token_pending(served: Served) -> None:
    user_id, email = await served.signup()
    issued = await served.issue(user_id)
    assert issued["url"].startswith(f"{served.base_url}/v1/onboard?token=")
    await served.stack.sandbox.add_fault(path="^/v1/account_links", status=500)

    failed = await _open(served, _token(issued))

    assert failed.status_code == 502, failed.text
    assert failed.json()["error"]["code"] == "stripe_unavailable"
    row = await served.token_row(user_id)
    assert row["status"] == "pending"
    assert row["state_sha256"] is None and row["started_at"] is None

    await served.stack.sandbox.clear_faults()
    opened = await _open(served, _token(issued))

    assert opened.status_code == 303, opened.text
    location = opened.headers["location"]
    assert location.startswith(f"{served.stack.sandbox.base_url}/_sandbox/pages/connect/")
    row = await served.token_row(user_id)
    assert row["status"] == "in_progress"
    assert row["state_sha256"] and row["expires_at"] is not None and row["started_at"] is not None
    # The link handed out is kept sealed for reuse, never in the clear.
    assert row["link_sealed"] and location.encode() not in row["link_sealed"]
    assert len(await _accounts(served, email)) == 1
    # The token itself is stored nowhere in the clear.
    assert issued["token"] not in json.dumps({k: str(v) for k, v in dict(row).items()})


@pytest.mark.slow
async def test_full_journey_completes_from_account_updated(
    served: Served, temporal_client: Client
) -> None:
    user_id, _ = await served.signup()
    issued = await served.issue(user_id)
    opened = await _open(served, _token(issued))
    assert opened.status_code == 303, opened.text
    account_id = (await served.status(user_id))["connect_account_id"]
    assert account_id.startswith("acct_")

    # The user finishes on the hosted page; only the webhook can tell (poll is 60 s and
    # nobody follows the return redirect here).
    page = await served.stack.sandbox.http.get(urlparse(opened.headers["location"]).path)
    assert page.status_code == 200
    done = await served.stack.sandbox.http.post(
        urlparse(opened.headers["location"]).path + "/complete"
    )
    assert done.status_code == 303
    assert "/v1/connect/return?state=" in done.headers["location"]

    async def completed() -> bool:
        return bool((await served.status(user_id))["token_status"] == "completed")

    await served.wait_for(completed, "completion from account.updated")
    status = await served.status(user_id)
    assert status["details_submitted"] and status["charges_enabled"] and status["payouts_enabled"]
    assert status["requirements_due"] == []
    assert status["completed_at"] is not None

    # A completed token answers 410; the return URL still thanks the user.
    assert (await _open(served, _token(issued))).status_code == 410
    returned = await served.http.get(done.headers["location"].replace(served.base_url, ""))
    assert returned.status_code == 200
    assert "Thank you" in returned.text
    await record_history(temporal_client, onboarding_workflow_id(user_id), "onboarding_journey")


@pytest.mark.slow
async def test_completion_is_detected_by_polling_without_webhooks(
    stack: Stack, db_pool: asyncpg.Pool
) -> None:
    async with serve_onboarding(stack, db_pool, webhooks=False, poll_seconds=1) as served:
        user_id, _ = await served.signup()
        issued = await served.issue(user_id)
        opened = await _open(served, _token(issued))
        assert opened.status_code == 303, opened.text
        account_id = (await served.status(user_id))["connect_account_id"]
        completed = await stack.sandbox.http.post(
            f"/_sandbox/accounts/{account_id}/complete_onboarding", json={}
        )
        completed.raise_for_status()

        async def done() -> bool:
            return bool((await served.status(user_id))["token_status"] == "completed")

        await served.wait_for(done, "completion by polling")
        status = await served.status(user_id)
        assert status["details_submitted"] and status["charges_enabled"]
        received = await db_pool.fetchval(
            "SELECT count(*) FROM webhook_events WHERE account = $1", account_id
        )
        assert received == 0  # no webhook reached the API: polling found it


@pytest.mark.slow
async def test_ten_concurrent_opens_make_one_account_one_link_and_one_transition(
    served: Served, temporal_client: Client
) -> None:
    user_id, email = await served.signup()
    issued = await served.issue(user_id)

    answers = await asyncio.gather(
        *(_open(served, _token(issued), json_answer=True) for _ in range(10))
    )

    urls = []
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200:
            urls.append(answer.json()["url"])
        else:
            assert answer.json()["error"]["code"] in ("operation_pending", "temporal_unavailable")
            assert "Retry-After" in answer.headers
    assert urls, "no open succeeded"
    # The first open's link is handed to every later one while it is fresh.
    assert len(set(urls)) == 1
    assert all("/_sandbox/pages/connect/" in url for url in urls)
    assert len(await _accounts(served, email)) == 1
    row = await served.token_row(user_id)
    assert row["status"] == "in_progress"
    transitions = await _previous_statuses(temporal_client, user_id)
    assert transitions == ["pending"]
    assert len(await _account_link_creates(served, user_id)) == 1


async def _account_link_creates(served: Served, user_id: str) -> list[dict[str, Any]]:
    """The sandbox's log of account links created for this user's workflow."""
    return [
        entry
        for entry in await served.stack.sandbox.requests()
        if entry["path"].startswith("/v1/account_links")
        and (entry["idempotency_key"] or "").startswith(onboarding_workflow_id(user_id))
    ]


async def _previous_statuses(client: Client, user_id: str) -> list[str]:
    """Results of every `mark_onboarding_token_in_progress` (the status it moved from)."""
    executions = await activity_executions(client, onboarding_workflow_id(user_id))
    return [result for name, result in executions if name == "mark_onboarding_token_in_progress"]


@pytest.mark.slow
async def test_reopening_reuses_the_fresh_link_and_refresh_makes_a_new_one(
    served: Served,
) -> None:
    user_id, email = await served.signup(payouts=True)
    issued = await served.issue(user_id)
    first = await _open(served, _token(issued), json_answer=True)
    assert first.status_code == 200, first.text
    row = await served.token_row(user_id)
    state = _state_of(served, row)
    assert row["state_sha256"] == tokens.hash_token(state)
    # The user visits Stripe's page, then closes the tab.
    visited = await served.stack.sandbox.http.get(urlparse(first.json()["url"]).path)
    assert visited.status_code == 200

    second = await _open(served, _token(issued), json_answer=True)

    # Within the link's life the same link comes back (no Stripe call); Stripe sends a
    # visited link's user to refresh_url, which makes a new one.
    assert second.status_code == 200, second.text
    assert second.json()["url"] == first.json()["url"]
    assert len(await _account_link_creates(served, user_id)) == 1
    again = await served.stack.sandbox.http.get(urlparse(second.json()["url"]).path)
    assert again.status_code == 303
    assert again.headers["location"].endswith(f"/v1/connect/refresh?state={state}")

    refreshed = await served.http.get("/v1/connect/refresh", params={"state": state})
    assert refreshed.status_code == 303, refreshed.text
    assert refreshed.headers["location"] != first.json()["url"]
    assert len(await _account_link_creates(served, user_id)) == 2
    row = await served.token_row(user_id)
    assert row["status"] == "in_progress"
    assert row["state_sha256"] == tokens.hash_token(state)  # kept for the token's life
    assert len(await _accounts(served, email)) == 1
    # The next open hands out the refreshed link.
    third = await _open(served, _token(issued), json_answer=True)
    assert third.json()["url"] == refreshed.headers["location"]
    bad = await served.http.get("/v1/connect/refresh", params={"state": "nope"})
    assert bad.status_code == 400


def _state_of(served: Served, row: asyncpg.Record) -> str:
    """The Connect state of a token (derived from its id: Postgres has only its digest)."""
    secret = served.stack.settings.onramp_token_secret
    return tokens.derive_token(secret, tokens.CONNECT_STATE, str(row["id"]))


@pytest.mark.slow
async def test_account_updated_after_completion_updates_the_flags(served: Served) -> None:
    user_id, _ = await served.signup()
    issued = await served.issue(user_id)
    opened = await _open(served, _token(issued))
    assert opened.status_code == 303, opened.text
    account_id = (await served.status(user_id))["connect_account_id"]
    await served.stack.sandbox.http.post(
        f"/_sandbox/accounts/{account_id}/complete_onboarding", json={}
    )

    async def completed() -> bool:
        return (await served.status(user_id))["charges_enabled"] is True

    await served.wait_for(completed, "completion")
    changed = await served.stack.sandbox.http.post(
        f"/_sandbox/accounts/{account_id}/update",
        json={
            "charges_enabled": False,
            "requirements": {"currently_due": ["individual.verification.document"]},
        },
    )
    changed.raise_for_status()

    async def disabled() -> bool:
        return (await served.status(user_id))["charges_enabled"] is False

    await served.wait_for(disabled, "charges_enabled=false recorded")
    status = await served.status(user_id)
    assert status["token_status"] == "completed"
    assert status["details_submitted"] is True
    assert status["requirements_due"] == ["individual.verification.document"]


async def test_api_refuses_unknown_and_signing_up_users(served: Served) -> None:
    missing = await served.http.post(
        "/v1/users/00000000-0000-0000-0000-000000000001/onboarding", headers=auth()
    )
    assert missing.status_code == 404
    unknown = await served.http.get("/v1/onboard", params={"token": "not-a-token"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "token_not_found"
    signing_up = await served.pool.fetchval(
        "INSERT INTO users (id, email, username) VALUES (gen_random_uuid(), "
        "'su-' || gen_random_uuid() || '@example.com', 'su') RETURNING id::text"
    )
    refused = await served.http.post(f"/v1/users/{signing_up}/onboarding", headers=auth())
    assert refused.status_code == 409


@pytest.mark.slow
async def test_a_new_token_revokes_the_unused_one(served: Served) -> None:
    user_id, _ = await served.signup()
    first = await served.issue(user_id)
    second = await served.issue(user_id)
    assert first["token"] != second["token"]
    gone = await _open(served, _token(first))
    assert gone.status_code == 410
    assert (await _open(served, _token(second))).status_code == 303


@pytest.mark.slow
async def test_idempotency_key_returns_the_same_token(served: Served) -> None:
    user_id, _ = await served.signup()
    headers = {**auth(), "Idempotency-Key": "onboarding-retry-1"}
    first = await served.http.post(f"/v1/users/{user_id}/onboarding", headers=headers)
    again = await served.http.post(f"/v1/users/{user_id}/onboarding", headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    count = await served.pool.fetchval(
        "SELECT count(*) FROM onboarding_tokens WHERE user_id = $1", user_id
    )
    assert count == 1
