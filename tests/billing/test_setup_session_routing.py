"""A setup-mode Checkout Session (a new payment method from the billing page) is routed
to the customer's `subscription-<user>`; a subscription-mode one still to `checkout-<user>`."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api.webhooks.events import StripeEvent
from api.webhooks.routing import Ignore, SignalTarget, route_event
from onramp.repositories import users


def _event(event_type: str, **session: Any) -> StripeEvent:
    return StripeEvent.model_validate(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": event_type,
            "created": 1_700_000_000,
            "livemode": False,
            "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex}", **session}},
        }
    )


async def test_setup_sessions_go_to_the_subscription_workflow(db_pool: asyncpg.Pool) -> None:
    user_id = str(uuid.uuid4())
    await users.insert_profile(db_pool, user_id, f"route-{user_id[:8]}@example.com", "sam", False)
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    await db_pool.execute(
        "UPDATE users SET stripe_customer_id = $2 WHERE id = $1", uuid.UUID(user_id), customer
    )
    completed = await route_event(
        _event("checkout.session.completed", mode="setup", customer=customer), db_pool
    )
    assert isinstance(completed, SignalTarget)
    assert (completed.workflow_id, completed.user_id) == (f"subscription-{user_id}", user_id)
    assert completed.start is not None

    expired = await route_event(
        _event("checkout.session.expired", mode="setup", customer=customer), db_pool
    )
    assert isinstance(expired, Ignore)

    paid = await route_event(
        _event(
            "checkout.session.completed",
            mode="subscription",
            customer=customer,
            metadata={"user_id": user_id},
        ),
        db_pool,
    )
    assert isinstance(paid, SignalTarget) and paid.workflow_id == f"checkout-{user_id}"
