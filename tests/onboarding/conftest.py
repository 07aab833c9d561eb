"""The onboarding stack: the `stack` fixture's worker and sandbox, plus the API served
over real HTTP (uvicorn on a free port), so the sandbox can deliver Connect webhooks
to it and the hosted page can redirect back to it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from onramp import tokens
from onramp.repositories import users
from onramp.settings import parse_capabilities
from tests.support.api_server import serve_app
from tests.support.harness import WEBHOOK_SECRETS, auth, make_worker_settings, temporal_address
from tests.support.stack import SandboxControl, Stack
from worker.build import WorkerDependencies, workflow_runner
from worker.registry import activities_for
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal
from workflows.contracts.onboarding import (
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    ONBOARDING_WORKFLOW,
    OPEN_ONBOARDING_LINK_UPDATE,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
    OnboardingWorkflowInput,
    OnboardingWorkflowStatus,
    OpenOnboardingLinkInput,
    OpenOnboardingLinkResult,
    onboarding_workflow_id,
)
from workflows.onboarding import OnboardingWorkflow

WEEK = 7 * 24 * 3600
STATUS_QUERY = "status"


@dataclass
class Served:
    """The API over real HTTP, with its public URL pointing at itself."""

    stack: Stack
    http: httpx.AsyncClient
    base_url: str
    pool: asyncpg.Pool

    async def signup(self, *, payouts: bool = False) -> tuple[str, str]:
        email = f"onb-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.http.post(
            "/v1/users",
            json={"email": email, "username": "onb", "payouts": payouts},
            headers=auth(),
        )
        return await self.stack.wait_for_active(response), email

    async def issue(self, user_id: str) -> dict[str, Any]:
        response = await self.http.post(f"/v1/users/{user_id}/onboarding", headers=auth())
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def status(self, user_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/users/{user_id}/onboarding", headers=auth())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def token_row(self, user_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM onboarding_tokens WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1",
            user_id,
        )
        assert row is not None
        return row

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30
    ) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def serve_onboarding(
    stack: Stack,
    pool: asyncpg.Pool,
    *,
    webhooks: bool,
    poll_seconds: float,
    overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Served]:
    settings = stack.settings.model_copy(
        update={"onboarding_poll_seconds": poll_seconds, **(overrides or {})}
    )
    app = create_app(settings)
    async with serve_app(app) as base_url:
        app.state.settings = settings.model_copy(update={"onramp_public_url": base_url})
        endpoint = {"url": f"{base_url}/v1/webhooks/stripe", "connect": True}
        if webhooks:
            registered = await stack.sandbox.http.post(
                "/_sandbox/webhooks/endpoints", json={**endpoint, "secret": WEBHOOK_SECRETS[1]}
            )
            registered.raise_for_status()
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                yield Served(stack=stack, http=http, base_url=base_url, pool=pool)
        finally:
            if webhooks:
                await stack.sandbox.http.request(
                    "DELETE", "/_sandbox/webhooks/endpoints", json=endpoint
                )


@dataclass
class SkippingOnboarding:
    """`onboarding-<user>` on the time-skipping server with the real activities (the
    sandbox for Stripe, Postgres), for runs measured in hours: a user, an issued token."""

    env: WorkflowEnvironment
    handle: WorkflowHandle[Any, OnboardingWorkflowStatus]
    sandbox: SandboxControl
    user_id: str
    token_id: str

    async def open_link(self) -> OpenOnboardingLinkResult:
        result: OpenOnboardingLinkResult = await self.handle.execute_update(
            OPEN_ONBOARDING_LINK_UPDATE,
            OpenOnboardingLinkInput(token_id=self.token_id, public_url="http://onramp.test"),
            result_type=OpenOnboardingLinkResult,
        )
        return result

    async def status(self) -> OnboardingWorkflowStatus:
        status: OnboardingWorkflowStatus = await self.handle.query(
            STATUS_QUERY, result_type=OnboardingWorkflowStatus
        )
        return status

    async def account_updated(self, account_id: str) -> None:
        """What the webhook router sends for `account.updated` (a trigger only)."""
        await self.handle.signal(
            STRIPE_EVENT_SIGNAL,
            StripeEventSignal(
                event_id=f"evt_{uuid.uuid4().hex[:14]}",
                type="account.updated",
                created=datetime.now(UTC),
                account=account_id,
                object_id=account_id,
                object_type="account",
            ),
        )

    async def poll_timers(self) -> list[float]:
        """Seconds of every timer the run started between a minute (the first poll) and a
        day, in order: the waits between re-reads. Left out: the token lifetime's timers
        (a week) and the 20 s budget an open gives the account create."""
        waits = []
        async for event in self.handle.fetch_history_events():
            if event.HasField("timer_started_event_attributes"):
                timeout = event.timer_started_event_attributes.start_to_fire_timeout
                seconds = timeout.ToTimedelta().total_seconds()
                if 60 <= seconds < 24 * 3600:
                    waits.append(seconds)
        return waits


@contextlib.asynccontextmanager
async def skipping_onboarding(
    env: WorkflowEnvironment,
    database_url: str,
    pool: asyncpg.Pool,
    sandbox_url: str,
    task_queue: str,
    *,
    capabilities: str = "card_payments,transfers",
    continue_after: int = 200,
) -> AsyncIterator[SkippingOnboarding]:
    user_id = str(uuid.uuid4())
    email = f"skip-{user_id[:8]}@example.com"
    await users.insert_profile(pool, user_id, email, "skip", False)
    await users.mark_active(pool, user_id)
    settings = make_worker_settings(
        database_url, temporal_address(env), task_queue, stripe_api_base=sandbox_url
    ).model_copy(update={"connect_capabilities": parse_capabilities(capabilities)})
    dependencies = WorkerDependencies.build(settings, pool)
    sandbox = SandboxControl(sandbox_url)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OnboardingWorkflow],
        activities=list(activities_for(dependencies)),
        workflow_runner=workflow_runner(),
    ):
        handle = await env.client.start_workflow(
            ONBOARDING_WORKFLOW,
            OnboardingWorkflowInput(
                user_id=user_id, poll_seconds=60, continue_after=continue_after
            ),
            id=onboarding_workflow_id(user_id),
            task_queue=task_queue,
            result_type=OnboardingWorkflowStatus,
        )
        token_id = tokens.new_token_id()
        await handle.execute_update(
            ISSUE_ONBOARDING_TOKEN_UPDATE,
            IssueOnboardingTokenInput(token_id=token_id, ttl_seconds=WEEK, poll_seconds=60),
            result_type=IssueOnboardingTokenResult,
        )
        try:
            yield SkippingOnboarding(env, handle, sandbox, user_id, token_id)
        finally:
            # A run left open without its worker holds a workflow task the time-skipping
            # server waits for, so later tests could not skip time: end it here.
            with contextlib.suppress(RPCError):
                await env.client.get_workflow_handle(handle.id).terminate("test over")
            await sandbox.aclose()
