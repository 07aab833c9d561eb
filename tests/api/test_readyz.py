"""/readyz answers for this API process (Postgres) and stays 200 without a worker or
Temporal; GET /v1/admin/system and the pollers gauge say what the system lacks."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from onramp.settings import ApiSettings
from tests.support.harness import (
    ADMIN_KEY,
    auth,
    make_api_settings,
    make_worker_settings,
    open_app_client,
    temporal_address,
)
from tests.support.polling import eventually
from worker.build import WorkerDependencies, build_worker


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _get(settings: ApiSettings, *paths: str) -> list[httpx.Response]:
    async for client in open_app_client(create_app(settings)):
        return [await client.get(path, headers=auth(ADMIN_KEY)) for path in paths]
    raise AssertionError("unreachable")


async def test_ready_without_a_worker_while_the_system_status_says_why(
    api_settings: ApiSettings,
) -> None:
    readyz, system = await _get(api_settings, "/readyz", "/v1/admin/system")
    assert readyz.status_code == 200, readyz.text
    assert readyz.json() == {
        "status": "ready",
        "checks": {"postgres": {"ok": True, "detail": "Postgres answers"}},
    }
    assert system.status_code == 200
    body = system.json()
    assert body["status"] == "degraded"
    components = body["components"]
    assert components["postgres"]["ok"] and components["temporal"]["ok"]
    worker = components["worker"]
    assert worker["ok"] is False and worker["state"] == "no_pollers"
    assert "no worker polling task queue" in worker["reason"]
    assert body["worker_pollers"] == {
        api_settings.temporal_task_queue: {"workflow": 0, "activity": 0}
    }


async def test_ready_while_temporal_is_unreachable(database_url: str, task_queue: str) -> None:
    settings = make_api_settings(database_url, f"127.0.0.1:{_closed_port()}", task_queue)
    started = time.monotonic()
    readyz, system = await _get(settings, "/readyz", "/v1/admin/system")
    assert time.monotonic() - started < 20  # bounded, not a hang
    assert readyz.status_code == 200
    components = system.json()["components"]
    assert components["temporal"]["state"] == "unreachable"
    assert "Temporal does not answer" in components["temporal"]["reason"]
    assert components["worker"]["state"] == "unknown"
    assert components["postgres"]["ok"] is True


async def test_the_system_status_needs_the_admin_key(api_settings: ApiSettings) -> None:
    async for client in open_app_client(create_app(api_settings)):
        assert (await client.get("/v1/admin/system")).status_code == 401
        assert (await client.get("/v1/admin/system", headers=auth())).status_code == 403


def _pollers(text: str, queue: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "onramp_worker_pollers" and sample.labels.get("queue") == queue:
                found[sample.labels["type"]] = sample.value
    return found


@pytest.mark.slow
async def test_a_worker_that_stops_is_seen_by_the_system_status_and_the_gauge(
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
) -> None:
    address = temporal_address(temporal_env)
    # A short poller age so that "the worker went away" shows within seconds here; the
    # default (~70 s) is what production uses (see api/system.py).
    settings = make_api_settings(
        database_url,
        address,
        task_queue,
        readiness_poller_max_age_seconds=3.0,
        system_check_interval_seconds=0.5,
    )
    dependencies = WorkerDependencies.build(
        make_worker_settings(database_url, address, task_queue), db_pool
    )
    worker = build_worker(temporal_env.client, task_queue, dependencies)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://onramp.test") as client,
    ):

        async def worker_state() -> tuple[str, dict[str, float], int]:
            system = await client.get("/v1/admin/system", headers=auth(ADMIN_KEY))
            metrics = await client.get("/metrics")
            ready = await client.get("/readyz")
            state = system.json()["components"]["worker"]["state"]
            return state, _pollers(metrics.text, task_queue), ready.status_code

        running = asyncio.create_task(worker.run())
        try:
            _, _, ready = await eventually(
                worker_state,
                lambda seen: seen[0] == "polling" and min(seen[1].values(), default=0) >= 1,
                seconds=20,
                interval=0.5,
            )
            assert ready == 200
        finally:
            await worker.shutdown()
            await running
        _, _, ready = await eventually(
            worker_state,
            lambda seen: seen[0] == "no_pollers" and seen[1] == {"workflow": 0, "activity": 0},
            seconds=30,
            interval=0.5,
        )
        assert ready == 200  # the load balancer keeps this API instance


async def test_the_provisioning_hook_queue_is_watched_when_one_is_set(
    database_url: str, temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    from temporalio import activity
    from temporalio.worker import Worker

    hook_queue = f"{task_queue}-platform"
    settings = make_api_settings(
        database_url,
        temporal_address(temporal_env),
        task_queue,
        provisioning_task_queue=hook_queue,
    )
    (system,) = await _get(settings, "/v1/admin/system")
    hook = system.json()["components"]["provisioning_hook"]
    assert hook["ok"] is False and hook["state"] == "no_pollers"
    assert hook_queue in hook["reason"]

    @activity.defn(name="provision_customer")
    async def provision_customer(request: dict[str, object]) -> dict[str, object]:
        return {"tenant_id": "tn_1"}

    async with Worker(temporal_env.client, task_queue=hook_queue, activities=[provision_customer]):

        async def hook_state() -> dict[str, object]:
            (answer,) = await _get(settings, "/v1/admin/system")
            body: dict[str, object] = answer.json()
            return body

        body = await eventually(
            hook_state,
            lambda body: body["components"]["provisioning_hook"]["ok"],  # type: ignore[index]
            seconds=20,
        )
        assert body["worker_pollers"][hook_queue] == {"activity": 1}  # type: ignore[index]
