"""Checkout end to end over HTTP: signup → checkout → pay
→ the setup status walks to `set_password` → the welcome email's link works →
`go_to_dashboard`; the exported workflow histories hold neither token nor password."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.processes import find_executable
from tests.checkout.conftest import PASSWORD, OpenStack, link_in, state_of
from tests.support.harness import ADMIN_KEY, auth
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.checkout import checkout_workflow_id
from workflows.contracts.subscription import subscription_workflow_id

pytestmark = pytest.mark.slow


# The walk the status contract allows, in order (states may be skipped between two polls).
WALK = [
    ("unpaid", "not_started", "not_sent", "pay"),
    ("confirming", "not_started", "not_sent", "wait_provisioning"),
    ("paid", "not_started", "not_sent", "wait_provisioning"),
    ("paid", "queued", "not_sent", "wait_provisioning"),
    ("paid", "running", "not_sent", "wait_provisioning"),
    ("paid", "completed", "sent", "set_password"),
    ("paid", "completed", "set", "go_to_dashboard"),
]


def _history(address: str, workflow_id: str) -> str:
    temporal = find_executable("temporal")
    assert temporal is not None
    result = subprocess.run(
        [temporal, "workflow", "show", "--workflow-id", workflow_id, "--address", address,
         "--output", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


async def _settled(client: Client, workflow_ids: tuple[str, ...]) -> None:
    """Wait until each workflow is closed or waits with nothing in progress (no workflow
    task, activity or child pending): its history then holds all it has done."""

    async def busy() -> list[str]:
        found: list[str] = []
        for workflow_id in workflow_ids:
            description = await client.get_workflow_handle(workflow_id).describe()
            raw = description.raw_description
            pending = raw.HasField("pending_workflow_task") or bool(
                raw.pending_activities or raw.pending_children
            )
            if description.status == WorkflowExecutionStatus.RUNNING and pending:
                found.append(workflow_id)
        return found

    await eventually(busy, lambda found: not found)


async def test_checkout_journey_end_to_end(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        user_id, address = await stack.signup()
        assert state_of(await stack.status(user_id)) == WALK[0]

        started = await stack.checkout(user_id)
        assert started["workflow_id"] == checkout_workflow_id(user_id)
        assert started["checkout_session_id"].startswith("cs_")
        assert started["url"]
        status = await stack.status(user_id)
        assert state_of(status) == WALK[0]
        assert status["workflow_id"] == checkout_workflow_id(user_id)
        assert status["checkout_session_id"] == started["checkout_session_id"]

        # The same plan again: the open session.
        again = await stack.checkout(user_id)
        assert again["checkout_session_id"] == started["checkout_session_id"]

        # The session carries user and workflow ids, and onramp's own success_url.
        session = await stack.stripe.v1.checkout.sessions.retrieve_async(
            started["checkout_session_id"]
        )
        assert session.client_reference_id == user_id
        assert session.metadata is not None
        assert session.metadata["user_id"] == user_id
        assert session.metadata["workflow_id"] == checkout_workflow_id(user_id)
        assert session.success_url == (
            f"{stack.api_url}/v1/checkout/return?session_id={{CHECKOUT_SESSION_ID}}"
        )

        paid = await stack.pay(started["checkout_session_id"])
        assert paid.status_code == 200, paid.text
        seen: list[tuple[str, str, str, str]] = []
        await stack.wait_status(
            user_id, lambda body: body["next_action"] == "set_password", seen=seen
        )
        positions = [WALK.index(state) for state in seen]
        assert positions == sorted(positions), seen
        final = await stack.status(user_id)
        assert state_of(final) == WALK[5]
        assert final["paid_at"] and final["provisioned_at"] and final["email_sent_at"]

        # The subscription was handed over: tier and row written by subscription-<user>.
        subscription = await stack.api.get(f"/v1/users/{user_id}/subscription", headers=auth())
        assert subscription.status_code == 200, subscription.text
        assert subscription.json()["tier"] == "pro"
        user = await stack.api.get(f"/v1/users/{user_id}", headers=auth())
        assert user.json()["tier"] == "pro"

        # A paid user cannot start another checkout.
        refused = await stack.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "enterprise", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert refused.status_code == 409, refused.text

        # The email: one, with a link that works.
        messages = stack.mail.to(address)
        assert len(messages) == 1
        link = link_in(messages[0])
        assert link.startswith(f"{stack.api_url}/v1/portal/set-password?token=")
        token = parse_qs(urlsplit(link).query)["token"][0]
        page = await stack.api.get(link)
        assert page.status_code == 200
        assert 'id="set-password"' in page.text and token in page.text
        outbox = await stack.db.fetchrow(
            "SELECT template, refs::text AS refs FROM email_outbox WHERE user_id = $1",
            uuid.UUID(user_id),
        )
        assert outbox is not None and outbox["template"] == "welcome"
        assert token not in outbox["refs"] and "set-password" not in outbox["refs"]

        short = await stack.api.post(
            "/v1/portal/set-password", json={"token": token, "password": "short"}
        )
        assert short.status_code == 422
        wrong = await stack.api.post(
            "/v1/portal/set-password", json={"token": "x" * 43, "password": PASSWORD}
        )
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "invalid_token"
        done = await stack.api.post(
            "/v1/portal/set-password", json={"token": token, "password": PASSWORD}
        )
        assert done.status_code == 204, done.text
        final = await stack.status(user_id)
        assert state_of(final) == WALK[6]
        assert final["password_set_at"] is not None
        used = await stack.api.post(
            "/v1/portal/set-password", json={"token": token, "password": PASSWORD}
        )
        assert used.status_code == 410
        assert (await stack.api.get(link)).status_code == 410
        stored = await stack.db.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(user_id)
        )
        assert stored.startswith("$argon2id$")

        # No token and no password in the exported histories.
        await _settled(
            stack.temporal, (checkout_workflow_id(user_id), subscription_workflow_id(user_id))
        )
        histories = [
            await asyncio.to_thread(_history, stack.temporal.service_client.config.target_host, wf)
            for wf in (checkout_workflow_id(user_id), subscription_workflow_id(user_id))
        ]
        for history in histories:
            json.loads(history)
            assert token not in history
            assert PASSWORD not in history
        assert "set-password?token" not in histories[0]
        await record_history(stack.temporal, checkout_workflow_id(user_id), "checkout_happy_path")
        await record_history(
            stack.temporal, subscription_workflow_id(user_id), "subscription_after_checkout"
        )


async def test_setup_status_and_checkout_refusals(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        unknown = str(uuid.uuid4())
        missing = await stack.api.get(f"/v1/users/{unknown}/setup-status", headers=auth())
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "user_not_found"
        nobody = await stack.api.post(
            "/v1/checkout",
            json={"user_id": unknown, "tier": "pro", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert nobody.status_code == 404
        bad = await stack.api.post(
            "/v1/checkout", json={"user_id": unknown, "tier": "gold"}, headers=auth()
        )
        assert bad.status_code == 422
        not_admin = await stack.api.post(
            f"/v1/admin/workflows/{checkout_workflow_id(unknown)}/retry-provisioning",
            headers=auth(),
        )
        assert not_admin.status_code == 403
        no_run = await stack.api.post(
            f"/v1/admin/workflows/{checkout_workflow_id(unknown)}/retry-provisioning",
            headers=auth(ADMIN_KEY),
        )
        assert no_run.status_code == 404
        back = await stack.api.get("/v1/checkout/return", params={"session_id": "cs_unknown"})
        assert back.status_code == 404


async def test_stripe_failure_is_a_502_with_nothing_kept(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        user_id, _ = await stack.signup()
        await stack.sandbox.add_fault(path="^/v1/checkout/sessions$", method="POST", status=400)
        failed = await stack.api.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
            headers=auth(),
        )
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"]["code"] == "stripe_error"
        status = await stack.status(user_id)
        assert status["workflow_id"] is None and status["next_action"] == "pay"
        await stack.sandbox.clear_faults()

        started = await stack.checkout(user_id)
        status = await stack.status(user_id)
        assert status["attempt"] == 1
        assert status["checkout_session_id"] == started["checkout_session_id"]
