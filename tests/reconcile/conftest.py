"""A reconciliation stack of its own: a private sandbox and database (the run looks at
everything in both, so no other test's objects may be there), the real worker on a
fresh task queue, and helpers that plant state directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import stripe
from temporalio.testing import WorkflowEnvironment

from activities.reconcile import ReconcileActivities
from devstack import supervisor
from devstack.stripe_catalog import ensure_catalog
from onramp.db import create_pool
from onramp.settings import WorkerSettings
from onramp.stripe_client import build_stripe_client
from tests.support.harness import (
    STRIPE_TEST_KEY,
    WORKER_GRACEFUL_SHUTDOWN,
    make_worker_settings,
    temporal_address,
)
from tests.support.sandbox_process import sandbox_process_async
from worker.build import WorkerDependencies, build_worker
from worker.registry import activities_for
from workflows.contracts.reconcile import (
    RECONCILE,
    ReconcileInput,
    ReconcilePolicy,
    ReconcileResult,
    reconcile_workflow_id,
)

# Planted objects are this old: past every grace and threshold below.
AGE = 7200
GRACE = 600


@dataclass
class ReconcileStack:
    db: asyncpg.Pool
    database_url: str
    stripe: stripe.StripeClient
    control: httpx.AsyncClient
    env: WorkflowEnvironment
    task_queue: str
    prices: dict[str, str]
    now: int

    async def plant(self, kind: str, *items: dict[str, Any]) -> list[str]:
        response = await self.control.post(f"/_sandbox/plant/{kind}", json={kind: list(items)})
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["ids"]
        return ids

    async def change_subscription(self, sub_id: str, **changes: str) -> None:
        response = await self.control.post(f"/_sandbox/plant/subscriptions/{sub_id}", json=changes)
        assert response.status_code == 200, response.text

    async def delete(self, object_id: str) -> None:
        response = await self.control.post(f"/_sandbox/plant/objects/{object_id}/delete")
        assert response.status_code == 200, response.text

    async def reconcile(self, *, dry_run: bool = False) -> ReconcileResult:
        result = await self.env.client.execute_workflow(
            RECONCILE.name,
            ReconcileInput(dry_run=dry_run),
            id=reconcile_workflow_id(f"test-{uuid.uuid4().hex[:10]}"),
            task_queue=self.task_queue,
            result_type=RECONCILE.result,
        )
        assert isinstance(result, ReconcileResult)
        return result


def reconcile_settings(
    database_url: str, address: str, task_queue: str, api_base: str
) -> WorkerSettings:
    settings = make_worker_settings(database_url, address, task_queue, stripe_api_base=api_base)
    return settings.model_copy(
        update={
            "reconcile_orphan_grace_seconds": float(GRACE),
            "reconcile_stuck_checkout_seconds": float(GRACE),
            "reconcile_stuck_provisioning_seconds": float(GRACE),
            "reconcile_stuck_onboarding_seconds": float(GRACE),
            "reconcile_page_size": 3,
        }
    )


@pytest.fixture
def reconcile_policy() -> ReconcilePolicy | None:
    """None: the policy the worker builds from its settings; a module may override it."""
    return None


def _activities(dependencies: WorkerDependencies, policy: ReconcilePolicy | None) -> list[Any]:
    activities = list(activities_for(dependencies))
    if policy is None:
        return activities
    own = ReconcileActivities(dependencies.pool, dependencies.stripe, policy)
    others = [
        a for a in activities if not isinstance(getattr(a, "__self__", None), ReconcileActivities)
    ]
    return [
        *others,
        own.begin_reconcile_run,
        own.reconcile_page,
        own.reread_subscription,
        own.delete_orphan_customer,
        own.record_repair,
        own.finish_reconcile_run,
    ]


@pytest.fixture
async def reconcile_stack(
    postgres: supervisor.Postgres,
    temporal_env: WorkflowEnvironment,
    reconcile_policy: ReconcilePolicy | None,
) -> AsyncIterator[ReconcileStack]:
    database_url = await postgres.database(f"onramp_reconcile_{uuid.uuid4().hex[:10]}")
    task_queue = f"onramp-reconcile-{uuid.uuid4().hex[:10]}"
    pool = await create_pool(database_url)
    try:
        async with sandbox_process_async() as sandbox_url:
            client = build_stripe_client(STRIPE_TEST_KEY, sandbox_url, max_network_retries=0)
            prices = await ensure_catalog(client)
            settings = reconcile_settings(
                database_url, temporal_address(temporal_env), task_queue, sandbox_url
            )
            dependencies = WorkerDependencies.build(settings, pool)
            worker = build_worker(
                temporal_env.client,
                task_queue,
                dependencies,
                graceful_shutdown=WORKER_GRACEFUL_SHUTDOWN,
                activities=_activities(dependencies, reconcile_policy),
            )
            async with worker, httpx.AsyncClient(base_url=sandbox_url) as control:
                now = int((await control.get("/_sandbox/clock")).json()["now"])
                yield ReconcileStack(
                    db=pool,
                    database_url=database_url,
                    stripe=client,
                    control=control,
                    env=temporal_env,
                    task_queue=task_queue,
                    prices=prices,
                    now=now,
                )
    finally:
        await pool.close()
