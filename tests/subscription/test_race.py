"""An upgrade and a burst of shuffled, duplicated subscription
events for the same user at the same moment end in the state Stripe holds, with the
billing row and users.tier equal — for 20 users at once.

The sandbox holds its webhooks while every user gets a pro subscription (so the events
of those changes pile up), then releases them shuffled, each three times, at the same
moment as an upgrade to enterprise for every user.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.subscription.conftest import BillingStack
from tests.support.harness import auth
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


USERS = 20


async def test_upgrade_racing_event_bursts_ends_in_stripes_state(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_ids = await asyncio.gather(*(stack.signup() for _ in range(USERS)))

    async def delivered() -> int:
        stats = (await stack.sandbox.http.get("/_sandbox/stats")).json()
        return sum(stats["webhook_deliveries"].values())

    baseline = await delivered()
    await stack.sandbox.http.post("/_sandbox/webhooks/hold")
    try:
        first = await asyncio.gather(
            *(
                stack.api.post(
                    f"/v1/users/{user_id}/subscription/upgrade",
                    json={"tier": "pro", "payment_method": "pm_card_visa"},
                    headers=auth(),
                )
                for user_id in user_ids
            )
        )
        assert all(response.status_code == 200 for response in first), [
            response.text for response in first if response.status_code != 200
        ]

        async def release() -> int:
            response = await stack.sandbox.http.post(
                "/_sandbox/webhooks/release", json={"order": "shuffled", "duplicates": 3}
            )
            response.raise_for_status()
            released: int = response.json()["released"]
            return released

        upgrades = asyncio.gather(
            *(
                stack.api.post(
                    f"/v1/users/{user_id}/subscription/upgrade",
                    json={"tier": "enterprise"},
                    headers=auth(),
                )
                for user_id in user_ids
            )
        )
        results, released = await asyncio.gather(upgrades, release())
    finally:
        await stack.sandbox.http.post("/_sandbox/webhooks/release", json={})
    assert all(response.status_code == 200 for response in results), [
        response.text for response in results if response.status_code != 200
    ]

    async def settled() -> list[str]:
        problems = []
        for user_id in user_ids:
            row = await db_pool.fetchrow(
                """
                SELECT b.tier AS billing_tier, u.tier AS user_tier, b.status,
                       b.stripe_subscription_id, b.stripe_price_id, b.cancel_at_period_end
                FROM billing b JOIN users u ON u.id = b.user_id WHERE b.user_id = $1
                """,
                uuid.UUID(user_id),
            )
            assert row is not None
            sub = await stack.stripe.v1.subscriptions.retrieve_async(row["stripe_subscription_id"])
            price = sub["items"]["data"][0]["price"]["id"]
            expected = (
                "enterprise", "enterprise", sub.status, price, sub.cancel_at_period_end
            )  # fmt: skip
            actual = (
                row["billing_tier"], row["user_tier"], row["status"], row["stripe_price_id"],
                row["cancel_at_period_end"],
            )  # fmt: skip
            if actual != expected or price != stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]:
                problems.append(f"{user_id}: {actual} != {expected}")
        return problems

    assert released > USERS * 3 * 3  # several events per user, each three times

    # The released events keep arriving after the upgrades answered; whatever their
    # order, each makes the workflow re-read Stripe, so the end state is Stripe's.
    await eventually(
        delivered, lambda count: count >= baseline + released, seconds=90, interval=0.5
    )
    assert await eventually(settled, lambda problems: not problems, seconds=30) == []
    handled = await db_pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE status = 'dispatched' AND user_id = ANY($1)",
        [uuid.UUID(user_id) for user_id in user_ids],
    )
    assert handled >= USERS * 3
