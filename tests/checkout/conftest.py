"""Fixtures of the checkout tests: a checkout stack — the API served over real
HTTP (so Stripe's webhooks and the user's `success_url` reach it), the Stripe sandbox
with the tier prices, an SMTP server that keeps messages (and can refuse recipients
with a 5xx, a permanent failure), and the worker (in-process, or `python -m worker`
processes the test starts and SIGKILLs).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import stripe
from aiosmtpd.controller import Controller
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from devstack import supervisor
from devstack.processes import ChildProcess
from devstack.stripe_catalog import ensure_catalog
from onramp.stripe_client import build_stripe_client
from tests.support.api_server import serve_app
from tests.support.harness import (
    STRIPE_TEST_KEY,
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

SUCCESS_PAGE = "https://platform.example/welcome"

PASSWORD = "correct horse battery staple"

# Holds the workspace insert of one user while the test holds an advisory lock, so a
# worker can be stopped or killed exactly "during provisioning".
_HOLD_WORKSPACE = """
CREATE OR REPLACE FUNCTION onramp_test_hold_workspace() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('onramp-test-ws-' || NEW.user_id::text));
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS onramp_test_hold_workspace ON workspaces;
CREATE TRIGGER onramp_test_hold_workspace BEFORE INSERT ON workspaces
    FOR EACH ROW EXECUTE FUNCTION onramp_test_hold_workspace();
"""


class _MailHandler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.reject = False
        self.refused = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.reject:
            self.refused += 1
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


class MailServer:
    """An SMTP server on a free port that keeps messages and can refuse recipients."""

    def __init__(self) -> None:
        self.handler = _MailHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=_free_port())

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.handler.messages if m["To"] == address]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture(scope="session")
async def catalog(sandbox_url: str) -> dict[str, str]:
    return await ensure_catalog(_sandbox_client(sandbox_url))


def _sandbox_client(sandbox_url: str) -> stripe.StripeClient:
    # Paced with the worker's client of the same account (the sandbox rate-limits).
    return build_stripe_client(STRIPE_TEST_KEY, sandbox_url, max_network_retries=0)


@pytest.fixture
async def workspace_gate(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    await connection.execute(_HOLD_WORKSPACE)
    try:
        yield connection
    finally:
        await connection.execute("SELECT pg_advisory_unlock_all()")
        await connection.close()


@dataclass
class CheckoutStack:
    api: httpx.AsyncClient
    api_url: str
    stripe: stripe.StripeClient
    sandbox: SandboxControl
    db: asyncpg.Pool
    temporal: Client
    task_queue: str
    mail: MailServer
    worker_env: dict[str, str]
    _make_worker: Callable[[], Worker]
    _worker: Worker | None = None
    _children: list[ChildProcess] = field(default_factory=list)

    # --- workers ---
    async def start_worker(self) -> None:
        worker = self._make_worker()
        await worker.__aenter__()
        self._worker = worker

    async def stop_worker(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker.__aexit__(None, None, None)

    def start_worker_process(self) -> ChildProcess:
        log = Path(tempfile.gettempdir()) / f"onramp-checkout-worker-{uuid.uuid4().hex[:8]}.log"
        child = supervisor.start_worker(self.worker_env, log_file=log)
        self._children.append(child)
        return child

    # --- the journey ---
    async def signup(self) -> tuple[str, str]:
        address = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.api.post(
            "/v1/users", json={"email": address, "username": "buyer"}, headers=auth()
        )
        assert response.status_code == 201, response.text
        user_id: str = response.json()["id"]
        return user_id, address

    async def checkout(
        self, user_id: str, tier: str = "pro", cycle: str = "monthly"
    ) -> dict[str, Any]:
        response = await self.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": tier, "billing_cycle": cycle},
            headers=auth(),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def pay(self, session_id: str, payment_method: str = "pm_card_visa") -> httpx.Response:
        return await self.sandbox.http.post(
            f"/_sandbox/checkout/sessions/{session_id}/pay",
            json={"payment_method": payment_method},
        )

    async def status(self, user_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/users/{user_id}/setup-status", headers=auth())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_status(
        self,
        user_id: str,
        accept: Callable[[dict[str, Any]], bool],
        seconds: float = 30.0,
        seen: list[tuple[str, str, str, str]] | None = None,
    ) -> dict[str, Any]:
        return await eventually(lambda: self._status_seen(user_id, seen), accept, seconds=seconds)

    async def _status_seen(
        self, user_id: str, seen: list[tuple[str, str, str, str]] | None
    ) -> dict[str, Any]:
        body = await self.status(user_id)
        if seen is not None:
            state = (
                body["payment_state"],
                body["provisioning_state"],
                body["password_state"],
                body["next_action"],
            )
            if not seen or seen[-1] != state:
                seen.append(state)
        return body

    async def count(self, sql: str, user_id: str) -> int:
        found: int = await self.db.fetchval(sql, uuid.UUID(user_id))
        return found


def state_of(body: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        body["payment_state"],
        body["provisioning_state"],
        body["password_state"],
        body["next_action"],
    )


def link_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/v1/portal/set-password\?token=\S+", body.get_content())
    assert found is not None, body.get_content()
    return found.group(0)


OpenStack = Callable[..., contextlib.AbstractAsyncContextManager[CheckoutStack]]


@pytest.fixture
def checkout_stack(
    sandbox_url: str,
    database_url: str,
    db_pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    catalog: dict[str, str],
    mail: MailServer,
) -> OpenStack:
    """`async with checkout_stack(webhooks=..., reconcile_after=..., worker=...,
    reread_attempts=..., api_overrides=..., worker_overrides=...) as s:`."""

    @contextlib.asynccontextmanager
    async def open_stack(
        *,
        webhooks: bool = True,
        reconcile_after: float = 60.0,
        worker: bool = True,
        reread_attempts: int = 5,
        api_overrides: dict[str, Any] | None = None,
        worker_overrides: dict[str, Any] | None = None,
    ) -> AsyncIterator[CheckoutStack]:
        address = temporal_address(temporal_env)
        control = SandboxControl(sandbox_url)
        await control.clear_faults()
        settings = make_api_settings(
            database_url, address, task_queue, checkout_success_url=SUCCESS_PAGE
        ).model_copy(update=api_overrides or {})
        async with serve_app(create_app(settings)) as api_url:
            worker_settings = make_worker_settings(
                database_url, address, task_queue, stripe_api_base=sandbox_url
            ).model_copy(
                update={
                    **{name.lower(): price for name, price in catalog.items()},
                    "smtp_url": mail.url,
                    "onramp_public_url": api_url,
                    "checkout_reconcile_after_seconds": reconcile_after,
                    "checkout_reconcile_max_seconds": reconcile_after * 4,
                    "checkout_reread_attempts": reread_attempts,
                    **(worker_overrides or {}),
                }
            )
            env = worker_process_env(
                database_url,
                address,
                task_queue,
                sandbox_url,
                **catalog,
                SMTP_URL=mail.url,
                ONRAMP_PUBLIC_URL=api_url,
                CHECKOUT_RECONCILE_AFTER_SECONDS=str(reconcile_after),
                CHECKOUT_REREAD_ATTEMPTS=str(reread_attempts),
                LOG_LEVEL="INFO",
                WORKER_GRACEFUL_SHUTDOWN_SECONDS="1",
            )

            def make_worker() -> Worker:
                return build_worker(
                    temporal_env.client,
                    task_queue,
                    WorkerDependencies.build(worker_settings, db_pool),
                    graceful_shutdown=timedelta(seconds=1),
                )

            endpoint = f"{api_url}/v1/webhooks/stripe"
            if webhooks:
                added = await control.http.post(
                    "/_sandbox/webhooks/endpoints",
                    json={"url": endpoint, "secret": WEBHOOK_SECRETS[0]},
                )
                added.raise_for_status()
            async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:
                stack = CheckoutStack(
                    api=api,
                    api_url=api_url,
                    stripe=_sandbox_client(sandbox_url),
                    sandbox=control,
                    db=db_pool,
                    temporal=temporal_env.client,
                    task_queue=task_queue,
                    mail=mail,
                    worker_env=env,
                    _make_worker=make_worker,
                )
                if worker:
                    await stack.start_worker()
                try:
                    yield stack
                finally:
                    for child in stack._children:
                        child.kill()
                        if child.log_file is not None:
                            child.log_file.unlink(missing_ok=True)
                    await stack.stop_worker()
                    if webhooks:
                        await control.http.request(
                            "DELETE", "/_sandbox/webhooks/endpoints", json={"url": endpoint}
                        )
                    mail.handler.reject = False
                    await control.clear_faults()
                    await control.aclose()

    return open_stack
