"""No webhook ever arrives: the checkout still completes, by its
own re-read after the reconcile interval, and at once when the user's browser comes
back through the session's `success_url`."""

from __future__ import annotations

import time

import pytest

from tests.checkout.conftest import SUCCESS_PAGE, OpenStack, state_of

pytestmark = pytest.mark.slow


async def test_reconcile_completes_without_webhooks(checkout_stack: OpenStack) -> None:
    async with checkout_stack(webhooks=False, reconcile_after=1.0) as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        assert (await stack.pay(started["checkout_session_id"])).status_code == 200
        final = await stack.wait_status(
            user_id, lambda body: body["next_action"] == "set_password", seconds=30
        )
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
        assert len(stack.mail.to(address)) == 1
        # Nothing about this session ever reached the webhook inbox.
        received = await stack.db.fetchval(
            "SELECT count(*) FROM webhook_events WHERE position($1::bytea in raw_body) > 0",
            started["checkout_session_id"].encode(),
        )
        assert received == 0


async def test_success_url_return_confirms_within_seconds(checkout_stack: OpenStack) -> None:
    # The reconcile interval is far away: only the return route can wake the workflow.
    async with checkout_stack(webhooks=False, reconcile_after=600.0) as stack:
        user_id, _ = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]
        assert (await stack.pay(session_id)).status_code == 200
        session = await stack.stripe.v1.checkout.sessions.retrieve_async(session_id)
        assert session.success_url is not None
        back_url = session.success_url.replace("{CHECKOUT_SESSION_ID}", session_id)
        began = time.monotonic()
        back = await stack.api.get(back_url, follow_redirects=False)
        assert back.status_code == 303
        assert back.headers["location"] == SUCCESS_PAGE
        final = await stack.wait_status(
            user_id, lambda body: body["next_action"] == "set_password", seconds=15
        )
        assert time.monotonic() - began < 15
        assert final["payment_state"] == "paid"
