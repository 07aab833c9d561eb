"""Duplicated, shuffled events and a permanently failing
provisioning step with an operator retry."""

from __future__ import annotations

import pytest

from tests.checkout.conftest import OpenStack, state_of
from tests.support.harness import ADMIN_KEY, auth
from tests.support.histories import record_history
from workflows.contracts.checkout import checkout_workflow_id

pytestmark = pytest.mark.slow


BILLING_ROWS = "SELECT count(*) FROM billing WHERE user_id = $1"
WORKSPACES = "SELECT count(*) FROM workspaces WHERE user_id = $1"
WELCOMES = "SELECT count(*) FROM email_outbox WHERE user_id = $1 AND template = 'welcome'"
LIVE_TOKENS = "SELECT count(*) FROM password_tokens WHERE user_id = $1 AND state = 'issued'"


async def test_duplicated_shuffled_events_have_one_effect(checkout_stack: OpenStack) -> None:
    # No reconciliation in reach: the events drive the checkout.
    async with checkout_stack(reconcile_after=600.0) as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        (await stack.sandbox.http.post("/_sandbox/webhooks/hold", json={})).raise_for_status()
        try:
            assert (await stack.pay(started["checkout_session_id"])).status_code == 200
        finally:
            released = await stack.sandbox.http.post(
                "/_sandbox/webhooks/release", json={"order": "shuffled", "duplicates": 3}
            )
            released.raise_for_status()
        final = await stack.wait_status(
            user_id, lambda body: body["next_action"] == "set_password", seconds=30
        )
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        assert await stack.count(BILLING_ROWS, user_id) == 1
        assert await stack.count(WORKSPACES, user_id) == 1
        assert await stack.count(WELCOMES, user_id) == 1
        assert len(stack.mail.to(address)) == 1
        subscription = await stack.api.get(f"/v1/users/{user_id}/subscription", headers=auth())
        assert subscription.json()["tier"] == "pro"


async def test_permanent_provisioning_failure_then_operator_retry(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        retry_url = f"/v1/admin/workflows/{checkout_workflow_id(user_id)}/retry-provisioning"
        early = await stack.api.post(retry_url, headers=auth(ADMIN_KEY))
        assert early.status_code == 409, early.text

        stack.mail.handler.reject = True  # the mail server refuses the recipient: 550
        assert (await stack.pay(started["checkout_session_id"])).status_code == 200
        failed = await stack.wait_status(
            user_id, lambda body: body["provisioning_state"] == "failed"
        )
        assert state_of(failed) == ("paid", "failed", "not_sent", "wait_provisioning")
        # The earlier steps were undone: no workspace, no usable token.
        assert await stack.count(WORKSPACES, user_id) == 0
        assert await stack.count(LIVE_TOKENS, user_id) == 0
        assert stack.mail.handler.refused >= 1
        assert stack.mail.to(address) == []

        stack.mail.handler.reject = False
        retried = await stack.api.post(retry_url, headers=auth(ADMIN_KEY))
        assert retried.status_code == 202, retried.text
        assert retried.json()["provisioning_state"] == "queued"
        final = await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        assert await stack.count(WORKSPACES, user_id) == 1
        assert await stack.count(LIVE_TOKENS, user_id) == 1
        assert len(stack.mail.to(address)) == 1
        await record_history(
            stack.temporal, checkout_workflow_id(user_id), "checkout_failed_then_retried"
        )
