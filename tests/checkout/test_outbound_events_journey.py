"""The outbox on the real stack: a checkout journey over HTTP writes `user.created`,
`user.active`, `checkout.paid`, `provisioning.completed` and `password.set` in that
order (and the tier change before provisioning completes), each once, with neither
token, password nor email address in a body."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from onramp.repositories import outbound_events
from tests.checkout.conftest import PASSWORD, OpenStack, link_in

pytestmark = pytest.mark.slow


async def test_a_checkout_journey_writes_its_events_once_in_order(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, address = await stack.signup()
        started = await stack.checkout(user_id)
        paid = await stack.pay(started["checkout_session_id"])
        assert paid.status_code == 200, paid.text
        await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
        link = link_in(stack.mail.to(address)[0])
        token = parse_qs(urlsplit(link).query)["token"][0]
        done = await stack.api.post(
            "/v1/portal/set-password", json={"token": token, "password": PASSWORD}
        )
        assert done.status_code == 204, done.text

        rows = await outbound_events.list_for_user(stack.db, user_id)
        types = [row.type for row in rows]
        # The tier is written by `subscription-<user>`, which may hear of the paid
        # subscription (its webhook) before the checkout records the payment.
        assert [kind for kind in types if kind != "subscription.tier_changed"] == [
            "user.created",
            "user.active",
            "checkout.paid",
            "provisioning.completed",
            "password.set",
        ]
        assert types.count("subscription.tier_changed") == 1
        assert types.index("subscription.tier_changed") < types.index("provisioning.completed")
        assert len({row.id for row in rows}) == len(rows)
        run_ids = {row.data["run_id"] for row in rows if "run_id" in row.data}
        assert len(run_ids) == 1
        changed = next(row.data for row in rows if row.type == "subscription.tier_changed")
        assert (changed["from_tier"], changed["to_tier"], changed["by_admin"]) == (
            "free",
            "pro",
            False,
        )
        for row in rows:
            body = json.dumps(row.data)
            assert token not in body and PASSWORD not in body and address not in body
