"""Bounded cost per token: the unauthenticated token routes cannot buy Stripe calls or
workflow history without limit.

- 1,000 opens of one onboarding link reuse its fresh account link (kept sealed in
  Postgres): one account link at Stripe and a handful of history events, whatever the
  count (the figures are in the assertion messages and docs/ONBOARDING.md);
- the token routes answer 429 with Retry-After past their per-token (and per-address)
  minute;
- a completed onboarding's state starts no run and no update;
- `onboarding-<user>` continues-as-new after its configured number of handled messages,
  carrying its state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.token_limits import LastSeen, WindowCounter
from onramp import tokens
from tests.onboarding.conftest import Served, SkippingOnboarding, serve_onboarding
from tests.onboarding.conftest import skipping_onboarding as open_skipping
from tests.support.harness import TOKEN_SECRET
from tests.support.polling import eventually
from tests.support.stack import Stack
from workflows.contracts.onboarding import (
    OPEN_ONBOARDING_LINK_UPDATE,
    OnboardingWorkflowStatus,
    OpenOnboardingLinkInput,
    OpenOnboardingLinkResult,
    onboarding_workflow_id,
)

OPENS = 1_000


def _token(issued: dict[str, Any]) -> str:
    return str(parse_qs(urlparse(issued["url"]).query)["token"][0])


async def _stripe_calls(served: Served, user_id: str, account_id: str) -> Counter[str]:
    """Requests the sandbox served for this user's onboarding, by endpoint."""
    calls: Counter[str] = Counter()
    for entry in await served.stack.sandbox.requests():
        key = entry["idempotency_key"] or ""
        if key.startswith(onboarding_workflow_id(user_id)) or account_id in entry["path"]:
            calls[f"{entry['method']} {entry['template']}"] += 1
    return calls


async def _history_events(client: Client, user_id: str) -> tuple[int, int]:
    """(runs, events) of every run of `onboarding-<user>`."""
    runs = events = 0
    async for execution in client.list_workflows(
        f'WorkflowId = "{onboarding_workflow_id(user_id)}"'
    ):
        runs += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        async for _ in handle.fetch_history_events():
            events += 1
    return runs, events


@pytest.fixture
async def unlimited(stack: Stack, db_pool: asyncpg.Pool) -> AsyncIterator[Served]:
    """The API with the rate limits out of the way, to measure what reuse alone costs."""
    overrides = {"token_route_limit_per_minute": 10**6, "address_route_limit_per_minute": 10**6}
    async with serve_onboarding(
        stack, db_pool, webhooks=False, poll_seconds=3600, overrides=overrides
    ) as served:
        yield served


@pytest.fixture
async def limited(stack: Stack, db_pool: asyncpg.Pool) -> AsyncIterator[Served]:
    async with serve_onboarding(stack, db_pool, webhooks=False, poll_seconds=3600) as served:
        yield served


@pytest.mark.slow
async def test_a_thousand_opens_of_one_link_cost_one_account_link(
    unlimited: Served, temporal_client: Client
) -> None:
    served = unlimited
    user_id, _ = await served.signup()
    token = _token(await served.issue(user_id))
    first = await served.http.get(
        "/v1/onboard", params={"token": token}, headers={"Accept": "application/json"}
    )
    assert first.status_code == 200, first.text
    account_id = (await served.status(user_id))["connect_account_id"]
    runs_before, events_before = await _history_events(temporal_client, user_id)

    async def open_once() -> tuple[int, str]:
        answer = await served.http.get(
            "/v1/onboard", params={"token": token}, headers={"Accept": "application/json"}
        )
        return answer.status_code, answer.json().get("url", "")

    answers: list[tuple[int, str]] = []
    for _ in range(OPENS // 50):
        answers += await asyncio.gather(*(open_once() for _ in range(50)))

    assert Counter(status for status, _ in answers) == {200: OPENS}
    assert {url for _, url in answers} == {first.json()["url"]}
    calls = await _stripe_calls(served, user_id, account_id)
    runs, events = await _history_events(temporal_client, user_id)
    figures = f"{OPENS} opens: Stripe {dict(calls)}; history {events_before}->{events} in {runs}"
    assert calls["POST /v1/account_links"] == 1, figures
    assert sum(calls.values()) <= 3, figures
    assert (runs, events) == (runs_before, events_before), figures


@pytest.mark.slow
async def test_token_routes_answer_429_past_their_minute(
    limited: Served, temporal_client: Client
) -> None:
    served = limited
    user_id, _ = await served.signup()
    token = _token(await served.issue(user_id))
    limit = served.stack.settings.token_route_limit_per_minute

    answers = [
        await served.http.get(
            "/v1/onboard", params={"token": token}, headers={"Accept": "application/json"}
        )
        for _ in range(limit + 5)
    ]

    statuses = [answer.status_code for answer in answers]
    assert statuses[:limit] == [200] * limit
    assert statuses[limit:] == [429] * 5
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Another token of another user is not held back by this one's minute.
    other_user, _ = await served.signup()
    other = await served.http.get(
        "/v1/onboard",
        params={"token": _token(await served.issue(other_user))},
        headers={"Accept": "application/json"},
    )
    assert other.status_code == 200, other.text
    # A state is counted the same way on refresh and return.
    bogus = "A" * 43
    refresh = [
        (await served.http.get("/v1/connect/refresh", params={"state": bogus})).status_code
        for _ in range(limit + 1)
    ]
    assert refresh[:limit] == [400] * limit and refresh[limit] == 429


@pytest.mark.slow
async def test_a_completed_onboardings_state_starts_no_run(
    limited: Served, temporal_client: Client
) -> None:
    served = limited
    user_id, _ = await served.signup()
    token = _token(await served.issue(user_id))
    opened = await served.http.get("/v1/onboard", params={"token": token})
    assert opened.status_code == 303, opened.text
    account_id = (await served.status(user_id))["connect_account_id"]
    done = await served.stack.sandbox.http.post(
        f"/_sandbox/accounts/{account_id}/complete_onboarding", json={}
    )
    done.raise_for_status()
    token_id = str((await served.token_row(user_id))["id"])
    state = tokens.derive_token(TOKEN_SECRET, tokens.CONNECT_STATE, token_id)
    # The user comes back (no webhooks here): the run re-reads, completes and ends.
    back = await served.http.get(
        "/v1/connect/return", params={"state": state}, headers={"Accept": "application/json"}
    )
    assert back.json() == {"user_id": user_id, "onboarding_complete": True}, back.text
    assert (await served.status(user_id))["token_status"] == "completed"
    handle = temporal_client.get_workflow_handle(onboarding_workflow_id(user_id))
    await eventually(handle.describe, lambda d: d.status is not None and d.status.name != "RUNNING")
    before = await _history_events(temporal_client, user_id)

    for _ in range(10):
        back = await served.http.get(
            "/v1/connect/return", params={"state": state}, headers={"Accept": "application/json"}
        )
        assert back.status_code == 200, back.text
        assert back.json() == {"user_id": user_id, "onboarding_complete": True}

    assert await _history_events(temporal_client, user_id) == before


async def test_onboarding_continues_as_new_carrying_its_state(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    db_pool: asyncpg.Pool,
    sandbox_url: str,
    task_queue: str,
) -> None:
    async with open_skipping(
        time_skipping_env, database_url, db_pool, sandbox_url, task_queue, continue_after=5
    ) as onboarding:
        first_run = onboarding.handle.result_run_id
        opened = await onboarding.open_link()
        url = tokens.unseal_text(TOKEN_SECRET, onboarding.token_id, opened.sealed_url)
        assert url is not None and url.startswith(sandbox_url)
        for _ in range(6):
            await onboarding.account_updated(opened.account_id)
        latest = time_skipping_env.client.get_workflow_handle(onboarding.handle.id)

        async def current() -> tuple[str | None, OnboardingWorkflowStatus]:
            description = await latest.describe()
            status = await latest.query("status", result_type=OnboardingWorkflowStatus)
            return description.run_id, status

        _, status = await eventually(
            current, lambda found: found[0] != first_run and len(found[1].applied_event_ids) == 6
        )
        assert status.account_id == opened.account_id
        assert [(t.token_id, t.status) for t in status.tokens] == [
            (onboarding.token_id, "in_progress")
        ]
        assert status.handled < 5
        # The new run still opens the token's link (from Postgres: same token, in progress).
        again = await _open_again(onboarding)
        assert again.account_id == opened.account_id


async def _open_again(onboarding: SkippingOnboarding) -> OpenOnboardingLinkResult:
    latest = onboarding.env.client.get_workflow_handle(onboarding.handle.id)
    result: OpenOnboardingLinkResult = await latest.execute_update(
        OPEN_ONBOARDING_LINK_UPDATE,
        OpenOnboardingLinkInput(token_id=onboarding.token_id, public_url="http://onramp.test"),
        result_type=OpenOnboardingLinkResult,
    )
    return result


def test_window_counter_and_last_seen_are_bounded_and_reset() -> None:
    now = [0.0]
    counter = WindowCounter(max_keys=3, clock=lambda: now[0])
    assert [counter.hit("a", 2) for _ in range(3)][:2] == [None, None]
    assert counter.hit("a", 2) is not None
    now[0] = 61.0
    assert counter.hit("a", 2) is None  # a new minute
    for key in ("b", "c", "d", "e"):
        counter.hit(key, 2)
    assert len(counter._counts) == 3
    seen = LastSeen(max_keys=2, clock=lambda: now[0])
    assert seen.due("s", 5) and not seen.due("s", 5)
    now[0] += 5
    assert seen.due("s", 5)
    for key in (str(uuid.uuid4()) for _ in range(5)):
        seen.due(key, 5)
    assert len(seen._seen) == 2
