"""The provisioning hook a platform owns: with `PROVISIONING_TASK_QUEUE` set, a paid
checkout provisions through the platform's `provision_customer` on that queue.

The platform is the example platform's worker (`examples/platform/worker.py`): a plain
`temporalio` worker with the SDK's default converter and JSON dicts (nothing of
onramp's), keeping its tenants in a SQLite file of its own. It runs in the test process
here; test_provisioning_hook_kill.py runs it as its own process and SIGKILLs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.provisioning_hook import result_problem
from api.routes.status_page import PaymentFacts, build_view
from examples.platform.store import Store
from examples.platform.worker import Platform, PlatformConfig
from onramp.checkout import SetupStatus
from onramp.repositories import outbound_events
from tests.checkout.conftest import CheckoutStack, OpenStack, state_of
from tests.encryption.sample_codec import platform_converter
from tests.support.harness import ADMIN_KEY, auth, make_api_settings
from tests.support.polling import eventually
from workflows.contracts.checkout import checkout_workflow_id

# The dashboard the platform's answers point at.
PLATFORM_URL = "https://platform.example"
WORKSPACES = "SELECT count(*) FROM workspaces WHERE user_id = $1"
LIVE_TOKENS = "SELECT count(*) FROM password_tokens WHERE user_id = $1 AND state = 'issued'"


@pytest.fixture
def platform_store(tmp_path: Path) -> Iterator[Store]:
    """The platform's own tables, in a SQLite file of this test's."""
    yield Store(tmp_path / "platform.db")


def example_platform(store: Store, **config: Any) -> Platform:
    """The example platform's worker code, answering dashboards under PLATFORM_URL, at
    once (no simulated setup time) unless told otherwise."""
    return Platform(store, PlatformConfig(public_url=PLATFORM_URL, setup_seconds=0.0, **config))


async def tenants_of(store: Store, user_id: str) -> list[dict[str, Any]]:
    return store.tenants(user_id)


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
    checkout_stack: OpenStack, platform_store: Store
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        platform = example_platform(platform_store)
        client = await Client.connect(
            temporal_address_of(stack), data_converter=platform_converter()
        )
        async with platform.worker(client, hook_queue):
            user_id, address = await stack.signup()
            final = await pay_and_wait(
                stack, user_id, accept=lambda body: body["next_action"] == "set_password"
            )
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        (tenant,) = await tenants_of(platform_store, user_id)
        assert tenant["email"] == address and tenant["tier"] == "pro"
        assert tenant["calls"] == 1 and tenant["state"] == "ready"
        assert tenant["idempotency_key"].startswith(f"{checkout_workflow_id(user_id)}/")
        assert final["tenant_id"] == tenant["tenant_id"]
        assert final["dashboard_url"] == f"https://platform.example/t/{tenant['tenant_id']}"
        # The platform's tenant takes the place of onramp's own workspace row.
        assert await stack.count(WORKSPACES, user_id) == 0
        assert await stack.count(LIVE_TOKENS, user_id) == 1
        assert len(stack.mail.to(address)) == 1


@pytest.mark.slow
async def test_a_permanent_platform_failure_is_undone_then_retried(
    checkout_stack: OpenStack, platform_store: Store
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        platform = example_platform(platform_store, sold_out_tiers={"pro"})
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
            (partial,) = await tenants_of(platform_store, user_id)
            await eventually(
                lambda: tenants_of(platform_store, user_id),
                lambda rows: all(row["state"] == "deprovisioned" for row in rows),
            )
            assert partial["calls"] == 1  # non-retryable: not retried
            assert await stack.count(WORKSPACES, user_id) == 0
            assert await stack.count(LIVE_TOKENS, user_id) == 0
            assert stack.mail.to(address) == []
            described = await stack.temporal.get_workflow_handle(
                checkout_workflow_id(user_id)
            ).query("status")
            assert "no seats left" in str(described)
            # The platform hears of it: one `provisioning.failed`, no completion.
            types = [row.type for row in await outbound_events.list_for_user(stack.db, user_id)]
            assert types.count("provisioning.failed") == 1, types
            assert "provisioning.completed" not in types

            # Fixed on the platform: an operator's retry is a new attempt with a new key.
            platform.config.sold_out_tiers.clear()
            retry_url = f"/v1/admin/workflows/{checkout_workflow_id(user_id)}/retry-provisioning"
            retried = await stack.api.post(retry_url, headers=auth(ADMIN_KEY))
            assert retried.status_code == 202, retried.text
            final = await stack.wait_status(
                user_id, lambda body: body["next_action"] == "set_password"
            )
        rows = await tenants_of(platform_store, user_id)
        live = [row for row in rows if row["state"] != "deprovisioned"]
        assert len(rows) == 2 and len(live) == 1
        assert final["tenant_id"] == live[0]["tenant_id"]
        rows_after = await outbound_events.list_for_user(stack.db, user_id)
        assert [row.type for row in rows_after].count("provisioning.completed") == 1


@pytest.mark.slow
async def test_a_later_step_failing_for_good_deprovisions_the_tenant(
    checkout_stack: OpenStack, platform_store: Store
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        client = await Client.connect(
            temporal_address_of(stack), data_converter=platform_converter()
        )
        async with example_platform(platform_store).worker(client, hook_queue):
            user_id, address = await stack.signup()
            stack.mail.handler.reject = True  # the welcome email is refused: 550
            failed = await pay_and_wait(
                stack, user_id, accept=lambda body: body["provisioning_state"] == "failed"
            )
            (tenant,) = await tenants_of(platform_store, user_id)
            await eventually(
                lambda: tenants_of(platform_store, user_id),
                lambda rows: all(row["state"] == "deprovisioned" for row in rows),
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
