"""Fixtures of the observability tests: tracing on with an in-memory exporter, and a
journey stack — the API served over real HTTP (Stripe's webhooks reach it), the
sandbox with the tier prices, an SMTP server that keeps messages, and a worker: in this
process on a traced Temporal client, or a `python -m worker` process.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack import supervisor
from onramp import tracing
from onramp.settings import WorkerSettings
from onramp.temporal import connect_temporal
from tests.checkout.conftest import (  # the checkout tests' session fixtures, shared
    MailServer,
    catalog,  # noqa: F401
    mail,  # noqa: F401
)
from tests.support.api_server import serve_app
from tests.support.harness import (
    TEST_PAYLOAD_KEYS,
    WEBHOOK_SECRETS,
    auth,
    make_api_settings,
    make_worker_settings,
    temporal_address,
    worker_process_env,
)
from tests.support.polling import eventually
from tests.support.stack import SandboxControl
from worker.build import WorkerDependencies, build_worker

# One exporter for the test session: OpenTelemetry allows one tracer provider per
# process, so tracing is switched on and off around each test instead.
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test; the spans it produced, as they would be exported."""
    tracing.configure("onramp-tests", None, exporter=_EXPORTER)
    _EXPORTER.clear()
    try:
        yield _EXPORTER
    finally:
        tracing.disable()
        _EXPORTER.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class JourneyStack:
    api: httpx.AsyncClient
    api_url: str
    sandbox: SandboxControl
    mail: MailServer
    db: asyncpg.Pool

    async def signup(self) -> tuple[str, str]:
        address = f"traced-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.api.post(
            "/v1/users",
            json={"email": address, "username": "traced", "payouts": True},
            headers=auth(),
        )
        # 201, or 202 while a worker process is still starting: then it becomes active.
        assert response.status_code in (201, 202), response.text
        user_id: str = response.json()["id"]
        await eventually(
            lambda: self.api.get(f"/v1/users/{user_id}", headers=auth()),
            lambda answer: answer.json().get("status") == "active",
            seconds=60,
        )
        return user_id, address

    async def checkout_and_pay(self, user_id: str) -> str:
        """Checkout, pay in the sandbox, wait for the welcome email; the session id."""
        response = await self.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert response.status_code == 201, response.text
        session_id: str = response.json()["checkout_session_id"]
        paid = await self.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/pay",
            json={"payment_method": "pm_card_visa"},
        )
        assert paid.status_code == 200, paid.text
        await eventually(
            lambda: self.api.get(f"/v1/users/{user_id}/setup-status", headers=auth()),
            lambda answer: answer.json().get("next_action") == "set_password",
            seconds=60,
        )
        return session_id


OpenJourney = Callable[..., contextlib.AbstractAsyncContextManager[JourneyStack]]


@pytest.fixture
def journey_stack(
    sandbox_url: str,
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    catalog: dict[str, str],  # noqa: F811
    mail: MailServer,  # noqa: F811
) -> OpenJourney:
    """`async with journey_stack(worker_process_env=None | {...}) as s:` — an
    in-process worker on a client made after tracing was configured, or (given extra
    environment) a `python -m worker` process."""

    @contextlib.asynccontextmanager
    async def open_stack(
        *, worker_process: dict[str, str] | None = None
    ) -> AsyncIterator[JourneyStack]:
        address = temporal_address(temporal_env)
        control = SandboxControl(sandbox_url)
        await control.clear_faults()
        settings = make_api_settings(database_url, address, task_queue)
        async with contextlib.AsyncExitStack() as stack:
            api_url = await stack.enter_async_context(serve_app(create_app(settings)))
            endpoint = f"{api_url}/v1/webhooks/stripe"
            added = await control.http.post(
                "/_sandbox/webhooks/endpoints", json={"url": endpoint, "secret": WEBHOOK_SECRETS[0]}
            )
            added.raise_for_status()
            stack.push_async_callback(
                control.http.request,
                "DELETE",
                "/_sandbox/webhooks/endpoints",
                json={"url": endpoint},
            )
            prices = {name.lower(): price for name, price in catalog.items()}
            if worker_process is None:
                await _in_process_worker(stack, settings_for_worker(
                    database_url, address, task_queue, sandbox_url, api_url, mail, prices
                ), db_pool, address, task_queue)  # fmt: skip
            else:
                env = worker_process_env(
                    database_url, address, task_queue, sandbox_url, **catalog,
                    SMTP_URL=mail.url, ONRAMP_PUBLIC_URL=api_url, LOG_LEVEL="INFO",
                    WORKER_GRACEFUL_SHUTDOWN_SECONDS="1", **worker_process,
                )  # fmt: skip
                log = Path(tempfile.gettempdir()) / f"onramp-otel-worker-{uuid.uuid4().hex[:8]}.log"
                child = supervisor.start_worker(env, log_file=log)
                stack.callback(log.unlink, missing_ok=True)
                stack.callback(child.kill)
            api = await stack.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=60))
            yield JourneyStack(api=api, api_url=api_url, sandbox=control, mail=mail, db=db_pool)
        await control.clear_faults()
        await control.aclose()

    return open_stack


def settings_for_worker(
    database_url: str,
    address: str,
    task_queue: str,
    sandbox_url: str,
    api_url: str,
    smtp: MailServer,
    prices: dict[str, Any],
) -> WorkerSettings:
    return make_worker_settings(
        database_url, address, task_queue, stripe_api_base=sandbox_url
    ).model_copy(update={**prices, "smtp_url": smtp.url, "onramp_public_url": api_url})


async def _in_process_worker(
    stack: contextlib.AsyncExitStack,
    settings: WorkerSettings,
    pool: asyncpg.Pool,
    address: str,
    task_queue: str,
) -> None:
    # A client of its own, made as the worker process makes it (with tracing's
    # interceptor, which the worker inherits), not the session's untraced one.
    client = await connect_temporal(address, "default", payload_keys=TEST_PAYLOAD_KEYS)
    worker = build_worker(
        client,
        task_queue,
        WorkerDependencies.build(settings, pool),
        graceful_shutdown=timedelta(seconds=1),
    )
    await stack.enter_async_context(worker)
