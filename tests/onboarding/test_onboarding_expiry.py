"""Token expiry by workflow timer, on the time-skipping server.

An unused token becomes `expired` when its lifetime ends, the run then ends (no token
open, handlers finished), and the service's link answers 410.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from onramp import tokens
from onramp.repositories import users
from tests.support.harness import TOKEN_SECRET, make_worker_settings, temporal_address
from worker.build import WorkerDependencies
from worker.registry import activities_for
from workflows.contracts.onboarding import (
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    ONBOARDING_WORKFLOW,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
    OnboardingWorkflowInput,
    OnboardingWorkflowStatus,
    onboarding_workflow_id,
)
from workflows.onboarding import OnboardingWorkflow

WEEK = 7 * 24 * 3600


async def test_unused_token_expires_after_its_lifetime_and_the_link_answers_410(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    db_pool: asyncpg.Pool,
    app_client: httpx.AsyncClient,
    task_queue: str,
) -> None:
    user_id = str(uuid.uuid4())
    await users.insert_profile(db_pool, user_id, f"exp-{user_id[:8]}@example.com", "exp", False)
    await users.mark_active(db_pool, user_id)
    dependencies = WorkerDependencies.build(
        make_worker_settings(database_url, temporal_address(time_skipping_env), task_queue),
        db_pool,
    )
    client = time_skipping_env.client
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[OnboardingWorkflow],
        activities=list(activities_for(dependencies)),
    ):
        handle = await client.start_workflow(
            ONBOARDING_WORKFLOW,
            OnboardingWorkflowInput(user_id=user_id),
            id=onboarding_workflow_id(user_id),
            task_queue=task_queue,
            result_type=OnboardingWorkflowStatus,
        )
        token_id = tokens.new_token_id()
        issued = await handle.execute_update(
            ISSUE_ONBOARDING_TOKEN_UPDATE,
            IssueOnboardingTokenInput(token_id=token_id, ttl_seconds=WEEK),
            result_type=IssueOnboardingTokenResult,
        )
        token = tokens.derive_token(TOKEN_SECRET, tokens.CONNECT_ONBOARDING, token_id)
        assert (
            await db_pool.fetchval("SELECT status FROM onboarding_tokens WHERE id = $1", token_id)
            == "pending"
        )

        # The run waits on the token's timer; the server skips the week.
        final = await handle.result()

    assert [t.status for t in final.tokens] == ["expired"]
    assert final.tokens[0].expires_at == issued.expires_at
    row = await db_pool.fetchrow("SELECT * FROM onboarding_tokens WHERE id = $1", token_id)
    assert row is not None
    assert row["status"] == "expired"
    assert row["state_sha256"] is None and row["link_sealed"] is None
    assert row["token_hash"] == tokens.hash_token(token)
    assert issued.expires_at - row["created_at"] > timedelta(days=6)

    answer = await app_client.get("/v1/onboard", params={"token": token})
    assert answer.status_code == 410, answer.text
    assert answer.json()["error"]["code"] == "token_gone"
