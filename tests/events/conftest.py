"""Event delivery against real services: Postgres, the Temporal dev server, an
in-process worker with the delivery workflows, the API, and a receiver on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.event_delivery import EventDeliveryActivities
from api.app import create_app
from tests.events.receiver import Receiver
from tests.support.harness import (
    ADMIN_KEY,
    TOKEN_SECRET,
    WORKER_GRACEFUL_SHUTDOWN,
    auth,
    make_api_settings,
    make_worker_settings,
    open_app_client,
    temporal_address,
)
from worker.build import WorkerDependencies, build_worker
from workflows.contracts.event_delivery import DeliveryPolicy
from workflows.event_delivery import EventDeliveryWorkflow
from workflows.event_dispatch import EventDispatchWorkflow

# Seconds instead of hours, so retries, pauses and gaps play out within a test.
FAST = DeliveryPolicy(
    attempt_timeout_seconds=2.0,
    initial_backoff_seconds=0.2,
    max_backoff_seconds=1.0,
    failing_after_seconds=1.5,
    poll_seconds=0.2,
    paused_poll_seconds=0.3,
    gap_grace_seconds=1.0,
    lane_idle_seconds=5.0,
)
ADMIN = auth(ADMIN_KEY)


@dataclass
class Delivery:
    api: httpx.AsyncClient
    pool: asyncpg.Pool
    receiver: Receiver
    temporal: Client

    async def create_endpoint(self, types: list[str] | None = None) -> dict[str, Any]:
        answer = await self.api.post(
            "/v1/admin/event-endpoints",
            json={"url": self.receiver.url, "event_types": types or ["*"]},
            headers=ADMIN,
        )
        assert answer.status_code == 201, answer.text
        endpoint: dict[str, Any] = answer.json()
        self.receiver.secrets.append(endpoint["secret"])
        return endpoint

    async def emit(
        self, user_id: str, type_: str = "user.created", event_id: str | None = None, **data: Any
    ) -> str:
        """An outbound event as the outbox writes it."""
        event_id = event_id or f"evt_{uuid.uuid4().hex}"
        await self.pool.execute(
            "INSERT INTO outbound_events (id, type, version, user_id, data) "
            "VALUES ($1, $2, 1, $3, $4::jsonb)",
            event_id,
            type_,
            user_id,
            _json({"user_id": user_id, **data}),
        )
        return event_id

    async def deliveries(self, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
        answer = await self.api.get(
            f"/v1/admin/event-endpoints/{endpoint_id}/deliveries",
            params={"limit": 500, **params},
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()["data"]
        return rows


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@pytest.fixture
async def delivery(
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
) -> AsyncIterator[Delivery]:
    address = temporal_address(temporal_env)
    dependencies = WorkerDependencies.build(
        make_worker_settings(database_url, address, task_queue), db_pool
    )
    activities = EventDeliveryActivities(db_pool, dependencies.settings.onramp_token_secret, FAST)
    worker = build_worker(
        temporal_env.client,
        task_queue,
        dependencies,
        workflows=[EventDispatchWorkflow, EventDeliveryWorkflow],
        activities=[
            activities.read_endpoint_events,
            activities.deliver_directly,
            activities.hand_over_events,
            activities.close_lanes,
            activities.deliver_event,
        ],
        graceful_shutdown=WORKER_GRACEFUL_SHUTDOWN,
    )
    receiver = Receiver()
    await receiver.start()
    try:
        async with worker:
            settings = make_api_settings(database_url, address, task_queue)
            async for api in open_app_client(create_app(settings)):
                yield Delivery(
                    api=api, pool=db_pool, receiver=receiver, temporal=temporal_env.client
                )
    finally:
        await receiver.stop()


__all__ = ["ADMIN", "FAST", "TOKEN_SECRET", "Delivery"]
