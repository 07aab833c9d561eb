"""Fixtures of the subscription tests: an SMTP sink, the Stripe catalog, and a billing
stack — API served over real HTTP (registered at the sandbox as a webhook endpoint, so
Stripe's events reach `subscription-<user>` the way they do in production) plus an
in-process worker with prices, proration and SMTP configured."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import stripe
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack import supervisor
from devstack.stripe_catalog import ensure_catalog
from devstack.supervisor import MailSink
from onramp.settings import ApiSettings
from onramp.stripe_client import build_stripe_client
from tests.support.api_server import serve_app
from tests.support.harness import (
    STRIPE_TEST_KEY,
    WEBHOOK_SECRETS,
    WORKER_GRACEFUL_SHUTDOWN,
    auth,
    make_api_settings,
    make_worker_settings,
    temporal_address,
)
from tests.support.stack import SandboxControl
from worker.build import WorkerDependencies, build_worker
from worker.registry import activities_for


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    """The SMTP sink process `onramp dev` runs, keeping messages in a tmp directory."""
    directory = Path(tmp_path_factory.mktemp("mail"))
    sink = supervisor.start_smtp_sink(directory, log_file=directory.parent / "smtp.log")
    try:
        yield sink
    finally:
        sink.stop()


def sandbox_client(sandbox_url: str) -> stripe.StripeClient:
    # Paced with the worker's client of the same account (the sandbox rate-limits).
    return build_stripe_client(STRIPE_TEST_KEY, sandbox_url, max_network_retries=0)


@pytest.fixture(scope="session")
async def catalog(sandbox_url: str) -> dict[str, str]:
    """`STRIPE_PRICE_*` → price id, created in the sandbox once per session."""
    return await ensure_catalog(sandbox_client(sandbox_url))


@dataclass
class BillingStack:
    api: httpx.AsyncClient
    api_url: str
    stripe: stripe.StripeClient
    sandbox: SandboxControl
    task_queue: str
    settings: ApiSettings
    temporal: Client
    prices: dict[str, str]
    smtp: MailSink

    async def signup(self, *, lazy: bool = True) -> str:
        """A new active user; `lazy` leaves the Stripe customer NULL."""
        email = f"sub-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.api.post(
            "/v1/users", json={"email": email, "username": "sam"}, headers=auth()
        )
        assert response.status_code == 201, response.text
        user_id: str = response.json()["id"]
        return user_id

    async def subscription(self, user_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/users/{user_id}/subscription", headers=auth())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def worker_overrides() -> dict[str, Any]:
    """Worker settings a test module may change (e.g. a small continue-as-new count)."""
    return {}


@pytest.fixture
def activity_overrides() -> list[Callable[..., Any]]:
    """Same-named activities that replace the real ones in the billing stack's worker."""
    return []


def _activity_name(function: Callable[..., Any]) -> str:
    definition = getattr(function, "__temporal_activity_definition")
    name: str = definition.name
    return name


@pytest.fixture
async def billing_stack(
    sandbox_url: str,
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    catalog: dict[str, str],
    smtp_sink: MailSink,
    worker_overrides: dict[str, Any],
    activity_overrides: list[Callable[..., Any]],
) -> AsyncIterator[BillingStack]:
    address = temporal_address(temporal_env)
    control = SandboxControl(sandbox_url)
    await control.clear_faults()
    worker_settings = make_worker_settings(
        database_url, address, task_queue, stripe_api_base=sandbox_url
    ).model_copy(
        update={
            **{name.lower(): price for name, price in catalog.items()},
            "smtp_url": smtp_sink.url,
            "stripe_proration_behavior": "always_invoice",
            **worker_overrides,
        }
    )
    dependencies = WorkerDependencies.build(worker_settings, db_pool)
    replaced = {_activity_name(function) for function in activity_overrides}
    activities = [
        function
        for function in activities_for(dependencies)
        if _activity_name(function) not in replaced
    ]
    worker = build_worker(
        temporal_env.client,
        task_queue,
        dependencies,
        graceful_shutdown=WORKER_GRACEFUL_SHUTDOWN,
        activities=[*activities, *activity_overrides],
    )
    # Signup without a Stripe customer (SIGNUP_STRIPE_CUSTOMER=lazy): the first upgrade
    # ensures it.
    settings = make_api_settings(database_url, address, task_queue, signup_stripe_customer="lazy")
    async with worker, serve_app(create_app(settings)) as api_url:
        endpoint = await control.http.post(
            "/_sandbox/webhooks/endpoints",
            json={"url": f"{api_url}/v1/webhooks/stripe", "secret": WEBHOOK_SECRETS[0]},
        )
        endpoint.raise_for_status()
        try:
            async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:
                yield BillingStack(
                    api=api,
                    api_url=api_url,
                    stripe=sandbox_client(sandbox_url),
                    sandbox=control,
                    task_queue=task_queue,
                    settings=settings,
                    temporal=temporal_env.client,
                    prices=catalog,
                    smtp=smtp_sink,
                )
        finally:
            await control.http.request(
                "DELETE",
                "/_sandbox/webhooks/endpoints",
                json={"url": f"{api_url}/v1/webhooks/stripe"},
            )
            await control.clear_faults()
            await control.aclose()
