"""/readyz reports Postgres, Temporal and a polling worker, and names what is missing."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from onramp.settings import ApiSettings
from tests.support.harness import (
    make_api_settings,
    make_worker_settings,
    open_app_client,
    temporal_address,
)
from worker.build import WorkerDependencies, build_worker


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _readyz(settings: ApiSettings) -> httpx.Response:
    async for client in open_app_client(create_app(settings)):
        return await client.get("/readyz")
    raise AssertionError("unreachable")


async def test_not_ready_without_a_worker(api_settings: ApiSettings) -> None:
    response = await _readyz(api_settings)
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "not_ready"
    assert "worker: no worker polling task queue" in body["error"]["message"]
    assert body["checks"]["postgres"]["ok"] is True
    assert body["checks"]["temporal"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False


async def test_not_ready_when_temporal_is_unreachable(database_url: str, task_queue: str) -> None:
    settings = make_api_settings(database_url, f"127.0.0.1:{_closed_port()}", task_queue)
    started = time.monotonic()
    response = await _readyz(settings)
    assert time.monotonic() - started < 15  # bounded, not a hang
    assert response.status_code == 503
    body = response.json()
    assert "temporal: Temporal does not answer" in body["error"]["message"]
    assert body["checks"]["postgres"]["ok"] is True


async def test_ready_with_a_worker_and_not_after_it_stops(
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
) -> None:
    address = temporal_address(temporal_env)
    # A short poller age so that "the worker went away" shows within seconds here; the
    # default (~70 s) is what production uses (see api/routes/health.py).
    settings = make_api_settings(
        database_url, address, task_queue, readiness_poller_max_age_seconds=3.0
    )
    dependencies = WorkerDependencies.build(
        make_worker_settings(database_url, address, task_queue), db_pool
    )
    worker = build_worker(temporal_env.client, task_queue, dependencies)
    running = asyncio.create_task(worker.run())
    try:
        response = await _poll_readyz(settings, until=200, seconds=15)
        checks = response.json()["checks"]
        assert checks["worker"]["ok"] and checks["temporal"]["ok"] and checks["postgres"]["ok"]
    finally:
        await worker.shutdown()
        await running
    response = await _poll_readyz(settings, until=503, seconds=20)
    assert "no worker polling" in response.json()["error"]["message"]


async def _poll_readyz(settings: ApiSettings, until: int, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    async for client in open_app_client(create_app(settings)):
        while True:
            response = await client.get("/readyz")
            if response.status_code == until or time.monotonic() > deadline:
                assert response.status_code == until, response.text
                return response
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")
