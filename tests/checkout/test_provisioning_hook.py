"""The provisioning hook a platform owns: with `PROVISIONING_TASK_QUEUE` set, a paid
checkout provisions through the platform's `provision_customer` on that queue.

The platform here is what a platform would write: a plain `temporalio` worker with the
SDK's default converter and JSON dicts (nothing of onramp's; the payload codec is
Temporal's encryption sample, with onramp's key), keeping its tenants in a
table of its own. It runs in the test process, or as a process of its own
(`python -m tests.checkout.test_provisioning_hook`) that test_provisioning_hook_kill.py
SIGKILLs mid-activity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.encryption.sample_codec import platform_converter

PLATFORM_TABLE = """
CREATE TABLE IF NOT EXISTS platform_tenants (
    idempotency_key text PRIMARY KEY,
    tenant_id text NOT NULL,
    user_id text NOT NULL,
    email text,
    tier text NOT NULL,
    calls integer NOT NULL DEFAULT 1,
    deprovisioned boolean NOT NULL DEFAULT false
)
"""


class Platform:
    """The platform's side of the hook: a tenant per idempotency key, made once."""

    def __init__(self, pool: asyncpg.Pool, *, hold_first_attempt: bool = False) -> None:
        self.pool = pool
        self.hold_first_attempt = hold_first_attempt
        self.refuse = False

    @activity.defn(name="provision_customer")
    async def provision_customer(self, request: dict[str, Any]) -> dict[str, Any]:
        # The key's tenant if this key was seen: a retry makes no second tenant.
        tenant_id: str = await self.pool.fetchval(
            "INSERT INTO platform_tenants (idempotency_key, tenant_id, user_id, email, tier) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) "
            "DO UPDATE SET calls = platform_tenants.calls + 1 RETURNING tenant_id",
            request["idempotency_key"],
            f"tn_{uuid.uuid4().hex[:12]}",
            request["user_id"],
            request.get("email"),
            request["tier"],
        )
        if self.refuse:
            raise ApplicationError(
                "no seats left for this plan", type="SeatsExhausted", non_retryable=True
            )
        if self.hold_first_attempt and activity.info().attempt == 1:
            while True:  # mid-activity, alive, until the test kills this process
                activity.heartbeat()
                await asyncio.sleep(1)
        return {"tenant_id": tenant_id, "dashboard_url": f"https://platform.example/t/{tenant_id}"}

    @activity.defn(name="deprovision_customer")
    async def deprovision_customer(self, request: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE platform_tenants SET deprovisioned = true WHERE idempotency_key = $1",
            request["idempotency_key"],
        )

    def worker(self, client: Client, task_queue: str) -> Worker:
        return Worker(
            client,
            task_queue=task_queue,
            activities=[self.provision_customer, self.deprovision_customer],
            graceful_shutdown_timeout=timedelta(seconds=1),
        )


async def _run_platform_process(address: str, task_queue: str, dsn: str, hold: bool) -> None:
    client = await Client.connect(address, data_converter=platform_converter())
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    async with Platform(pool, hold_first_attempt=hold).worker(client, task_queue):
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("task_queue")
    parser.add_argument("dsn")
    parser.add_argument("--hold-first-attempt", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(
        _run_platform_process(
            arguments.address, arguments.task_queue, arguments.dsn, arguments.hold_first_attempt
        )
    )
    sys.exit(0)


# --- the tests (imported here so the platform process above stays light) ---------------

from activities.provisioning_hook import result_problem  # noqa: E402
from api.routes.status_page import PaymentFacts, build_view  # noqa: E402
from onramp.checkout import SetupStatus  # noqa: E402
from tests.checkout.conftest import CheckoutStack, OpenStack, state_of  # noqa: E402
from tests.support.harness import ADMIN_KEY, auth, make_api_settings  # noqa: E402
from tests.support.polling import eventually  # noqa: E402
from workflows.contracts.checkout import checkout_workflow_id  # noqa: E402

WORKSPACES = "SELECT count(*) FROM workspaces WHERE user_id = $1"
LIVE_TOKENS = "SELECT count(*) FROM password_tokens WHERE user_id = $1 AND state = 'issued'"


@contextlib.asynccontextmanager
async def open_platform_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The platform's own table, in the test's database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    await pool.execute(PLATFORM_TABLE)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def platform_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_platform_pool(database_url) as pool:
        yield pool


async def tenants_of(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM platform_tenants WHERE user_id = $1 ORDER BY idempotency_key", user_id
    )
    return rows


def temporal_address_of(stack: CheckoutStack) -> str:
    target: str = stack.temporal.service_client.config.target_host
    return target


async def pay_and_wait(stack: CheckoutStack, user_id: str, **wait: Any) -> dict[str, Any]:
    started = await stack.checkout(user_id)
    assert (await stack.pay(started["checkout_session_id"])).status_code == 200
    body: dict[str, Any] = await stack.wait_status(user_id, **wait)
    return body


@pytest.mark.slow
async def test_the_journey_provisions_one_tenant_through_the_platform(
    checkout_stack: OpenStack, platform_pool: asyncpg.Pool
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        platform = Platform(platform_pool)
        client = await Client.connect(
            temporal_address_of(stack), data_converter=platform_converter()
        )
        async with platform.worker(client, hook_queue):
            user_id, address = await stack.signup()
            final = await pay_and_wait(
                stack, user_id, accept=lambda body: body["next_action"] == "set_password"
            )
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        (tenant,) = await tenants_of(platform_pool, user_id)
        assert tenant["email"] == address and tenant["tier"] == "pro"
        assert tenant["calls"] == 1 and not tenant["deprovisioned"]
        assert tenant["idempotency_key"].startswith(f"{checkout_workflow_id(user_id)}/")
        assert final["tenant_id"] == tenant["tenant_id"]
        assert final["dashboard_url"] == f"https://platform.example/t/{tenant['tenant_id']}"
        # The platform's tenant takes the place of onramp's own workspace row.
        assert await stack.count(WORKSPACES, user_id) == 0
        assert await stack.count(LIVE_TOKENS, user_id) == 1
        assert len(stack.mail.to(address)) == 1


@pytest.mark.slow
async def test_a_permanent_platform_failure_is_undone_then_retried(
    checkout_stack: OpenStack, platform_pool: asyncpg.Pool
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        platform = Platform(platform_pool)
        platform.refuse = True
        client = await Client.connect(
            temporal_address_of(stack), data_converter=platform_converter()
        )
        async with platform.worker(client, hook_queue):
            user_id, address = await stack.signup()
            failed = await pay_and_wait(
                stack, user_id, accept=lambda body: body["provisioning_state"] == "failed"
            )
            assert state_of(failed) == ("paid", "failed", "not_sent", "wait_provisioning")
            assert failed["tenant_id"] is None and failed["dashboard_url"] is None
            # The platform's partial tenant was deprovisioned under its key; onramp's
            # side holds nothing: no tenant, no workspace, no usable token, no email.
            (partial,) = await tenants_of(platform_pool, user_id)
            await eventually(
                lambda: tenants_of(platform_pool, user_id),
                lambda rows: all(row["deprovisioned"] for row in rows),
            )
            assert partial["calls"] == 1  # non-retryable: not retried
            assert await stack.count(WORKSPACES, user_id) == 0
            assert await stack.count(LIVE_TOKENS, user_id) == 0
            assert stack.mail.to(address) == []
            described = await stack.temporal.get_workflow_handle(
                checkout_workflow_id(user_id)
            ).query("status")
            assert "no seats left" in str(described)

            # Fixed on the platform: an operator's retry is a new attempt with a new key.
            platform.refuse = False
            retry_url = f"/v1/admin/workflows/{checkout_workflow_id(user_id)}/retry-provisioning"
            retried = await stack.api.post(retry_url, headers=auth(ADMIN_KEY))
            assert retried.status_code == 202, retried.text
            final = await stack.wait_status(
                user_id, lambda body: body["next_action"] == "set_password"
            )
        rows = await tenants_of(platform_pool, user_id)
        live = [row for row in rows if not row["deprovisioned"]]
        assert len(rows) == 2 and len(live) == 1
        assert final["tenant_id"] == live[0]["tenant_id"]


@pytest.mark.slow
async def test_a_later_step_failing_for_good_deprovisions_the_tenant(
    checkout_stack: OpenStack, platform_pool: asyncpg.Pool
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        client = await Client.connect(
            temporal_address_of(stack), data_converter=platform_converter()
        )
        async with Platform(platform_pool).worker(client, hook_queue):
            user_id, address = await stack.signup()
            stack.mail.handler.reject = True  # the welcome email is refused: 550
            failed = await pay_and_wait(
                stack, user_id, accept=lambda body: body["provisioning_state"] == "failed"
            )
            (tenant,) = await tenants_of(platform_pool, user_id)
            await eventually(
                lambda: tenants_of(platform_pool, user_id),
                lambda rows: all(row["deprovisioned"] for row in rows),
            )
        assert tenant["calls"] == 1
        assert failed["tenant_id"] is None and failed["dashboard_url"] is None
        assert await stack.count(LIVE_TOKENS, user_id) == 0
        assert stack.mail.to(address) == []


def test_the_platform_answer_is_checked_before_it_is_recorded() -> None:
    assert result_problem("tn_1", "https://platform.example/t/1") is None
    assert result_problem("tn_1", None) is None
    assert result_problem("", None) is not None
    assert result_problem("x" * 201, None) is not None
    assert result_problem("tn_1", "javascript:alert(1)") is not None
    assert result_problem("tn_1", "https://platform.example/a b") is not None


_UNSET_STATUS_FIELDS = (
    *("workflow_id", "attempt", "checkout_session_id", "tier", "billing_cycle"),
    *("created_at", "updated_at", "paid_at", "provisioned_at", "email_sent_at"),
    "password_set_at",
)


def test_the_status_page_links_to_the_tenant_dashboard() -> None:
    settings = make_api_settings("postgresql://u@localhost/db", "localhost:7233", "q")
    done: dict[str, Any] = {
        "user_id": str(uuid.uuid4()),
        "payment_state": "paid",
        "provisioning_state": "completed",
        "password_state": "set",
        "next_action": "go_to_dashboard",
        **dict.fromkeys(_UNSET_STATUS_FIELDS),
    }
    own = build_view(SetupStatus.model_validate(done), PaymentFacts(), settings)
    assert own.actions[0].url != "https://platform.example/t/tn_1"
    tenant = SetupStatus.model_validate(
        {**done, "tenant_id": "tn_1", "dashboard_url": "https://platform.example/t/tn_1"}
    )
    view = build_view(tenant, PaymentFacts(), settings)
    assert view.stage == "dashboard"
    assert view.actions[0].url == "https://platform.example/t/tn_1"
