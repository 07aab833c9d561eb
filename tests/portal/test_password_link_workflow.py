"""`password-link-<user>` on the dev server with the worker's real activities: it sends
only to a user whose checkout is paid and who has no password, issues a new token while
revoking the earlier ones, and sends through the one email activity."""

from __future__ import annotations

import uuid

import pytest
from temporalio.common import WorkflowIDConflictPolicy

from onramp.tokens import hash_token
from tests.checkout.conftest import CheckoutStack, OpenStack
from tests.portal.conftest import paid_user, token_of
from tests.support.histories import activity_steps, record_history
from workflows.contracts.password_link import (
    PASSWORD_LINK,
    PASSWORD_LINK_STATUS,
    PasswordLinkInput,
    PasswordLinkResult,
    password_link_workflow_id,
)

pytestmark = pytest.mark.slow


async def _run(stack: CheckoutStack, user_id: str) -> PasswordLinkResult:
    result: PasswordLinkResult = await stack.temporal.execute_workflow(
        PASSWORD_LINK.name,
        PasswordLinkInput(user_id=user_id),
        id=password_link_workflow_id(user_id),
        task_queue=stack.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=PASSWORD_LINK.result,
    )
    return result


async def test_nothing_is_sent_to_a_user_who_needs_no_link(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        assert await _run(stack, str(uuid.uuid4())) == PasswordLinkResult(
            sent=False, reason="no_user"
        )
        user_id, address = await stack.signup()
        assert await _run(stack, user_id) == PasswordLinkResult(sent=False, reason="not_paid")
        steps = await activity_steps(stack.temporal, password_link_workflow_id(user_id))
        assert steps == ["password_link_target"]
        status = await stack.temporal.get_workflow_handle(password_link_workflow_id(user_id)).query(
            PASSWORD_LINK_STATUS.name, result_type=PASSWORD_LINK_STATUS.result
        )
        assert (status.step, status.sent, status.reason) == ("done", False, "not_paid")
        await record_history(
            stack.temporal, password_link_workflow_id(user_id), "password_link_not_paid"
        )
        assert stack.mail.to(address) == []


async def test_a_paid_user_gets_a_new_token_and_the_earlier_one_is_revoked(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, address, welcome = await paid_user(stack)
        result = await _run(stack, user_id)
        assert result.sent is True and result.token_id is not None
        steps = await activity_steps(stack.temporal, password_link_workflow_id(user_id))
        assert steps == ["password_link_target", "replace_password_token", "send_email"]
        rows = await stack.db.fetch(
            "SELECT id::text, state FROM password_tokens WHERE user_id = $1::uuid", user_id
        )
        states: dict[str, str] = {row["id"]: row["state"] for row in rows}
        assert states[result.token_id] == "issued"
        welcome_id = await stack.db.fetchval(
            "SELECT id::text FROM password_tokens WHERE token_hash = $1",
            hash_token(token_of(welcome)),
        )
        assert states[welcome_id] == "revoked"
        assert len(states) == 2
        # The run is closed: the same id runs again, and replaces its own token in turn.
        second = await _run(stack, user_id)
        assert second.sent is True and second.token_id != result.token_id
        assert len(stack.mail.to(address)) == 3
        revoked = await stack.db.fetchval(
            "SELECT state FROM password_tokens WHERE id = $1::uuid", result.token_id
        )
        assert revoked == "revoked"
