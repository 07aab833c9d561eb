"""The subscription journey over HTTP on a running stack.

The API is served over real HTTP and registered at the sandbox as a webhook endpoint,
so `customer.subscription.deleted` at the period end reaches `subscription-<user>`
through the webhook ingress (store, route, signal-with-start) as in production.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.subscription.conftest import BillingStack
from tests.support.harness import ADMIN_KEY, auth
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.subscription import subscription_workflow_id

# The platform collected this card (a test card: only tests may name one).
CARD = "pm_card_visa"


async def _tiers(db: asyncpg.Pool, user_id: str) -> tuple[str | None, str]:
    billing_tier = await db.fetchval(
        "SELECT tier FROM billing WHERE user_id = $1", uuid.UUID(user_id)
    )
    user_tier = await db.fetchval("SELECT tier FROM users WHERE id = $1", uuid.UUID(user_id))
    return billing_tier, user_tier


async def _post(stack: BillingStack, user_id: str, action: str, **body: Any) -> dict[str, Any]:
    response = await stack.api.post(
        f"/v1/users/{user_id}/subscription/{action}", json=body or None, headers=auth()
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _subscription_writes(stack: BillingStack, subscription_id: str | None) -> list[Any]:
    return [
        entry
        for entry in await stack.sandbox.requests()
        if entry["method"] == "POST"
        and (
            entry["path"] == "/v1/subscriptions"
            or (subscription_id and entry["path"] == f"/v1/subscriptions/{subscription_id}")
        )
    ]


@pytest.mark.slow
async def test_subscription_journey_over_http(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    user = (await stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()
    assert user["stripe_customer_id"] is None and user["tier"] == "free"
    start = await stack.subscription(user_id)
    assert (start["tier"], start["status"], start["stripe_subscription_id"]) == (
        "free", "none", None,
    )  # fmt: skip
    invoices = await stack.api.get(f"/v1/users/{user_id}/invoices", headers=auth())
    assert invoices.status_code == 200 and invoices.json()["data"] == []

    # Cancel and reactivate without Stripe billing: a clear 400, nothing written.
    refused = await stack.api.post(f"/v1/users/{user_id}/subscription/cancel", headers=auth())
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == {
        "code": "no_stripe_billing",
        "message": "Cannot cancel subscription without active Stripe billing",
    }
    refused = await stack.api.post(f"/v1/users/{user_id}/subscription/reactivate", headers=auth())
    assert refused.json()["error"]["message"] == (
        "Cannot reactivate subscription without active Stripe billing"
    )

    # Admin pro: no Stripe request at all, NULL customer, an audit row naming the key.
    before = len(await stack.sandbox.requests())
    admin = await stack.api.put(
        f"/v1/admin/users/{user_id}/tier",
        json={"tier": "pro", "reason": "beta partner"},
        headers=auth(ADMIN_KEY),
    )
    assert admin.status_code == 200, admin.text
    assert admin.json()["tier"] == "pro" and admin.json()["admin_override"] is True
    assert len(await stack.sandbox.requests()) == before
    assert await _tiers(db_pool, user_id) == ("pro", "pro")
    assert (
        await db_pool.fetchval(
            "SELECT stripe_customer_id FROM users WHERE id = $1", uuid.UUID(user_id)
        )
        is None
    )
    audit = await db_pool.fetch(
        "SELECT who, from_tier, to_tier, reason FROM tier_audit WHERE user_id = $1 ORDER BY id",
        uuid.UUID(user_id),
    )
    assert [tuple(row) for row in audit] == [("test-admin", "free", "pro", "beta partner")]
    client_key = await stack.api.put(
        f"/v1/admin/users/{user_id}/tier", json={"tier": "pro", "reason": "x"}, headers=auth()
    )
    assert client_key.status_code == 403

    admin = await stack.api.put(
        f"/v1/admin/users/{user_id}/tier",
        json={"tier": "free", "reason": "beta over"},
        headers=auth(ADMIN_KEY),
    )
    assert admin.status_code == 200 and admin.json()["tier"] == "free"
    assert await _tiers(db_pool, user_id) == ("free", "free")
    assert len(await stack.sandbox.requests()) == before

    # Upgrade through Stripe: customer created now, subscription active, both tiers.
    upgraded = await _post(stack, user_id, "upgrade", tier="enterprise", payment_method=CARD)
    assert upgraded["tier"] == "enterprise" and upgraded["status"] == "active"
    assert upgraded["admin_override"] is False
    assert upgraded["stripe_customer_id"].startswith("cus_")
    subscription_id = upgraded["stripe_subscription_id"]
    assert subscription_id.startswith("sub_")
    assert upgraded["stripe_price_id"] == stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    assert await _tiers(db_pool, user_id) == ("enterprise", "enterprise")
    at_stripe = await stack.stripe.v1.subscriptions.retrieve_async(subscription_id)
    assert at_stripe.status == "active"
    assert at_stripe.metadata is not None and at_stripe.metadata["user_id"] == user_id

    # Downgrade to pro: a price change with the configured proration (always_invoice).
    down = await _post(stack, user_id, "downgrade", tier="pro")
    assert down["tier"] == "pro" and down["stripe_subscription_id"] == subscription_id
    assert down["stripe_price_id"] == stack.prices["STRIPE_PRICE_PRO_MONTHLY"]
    assert await _tiers(db_pool, user_id) == ("pro", "pro")
    stripe_invoices = await stack.stripe.v1.invoices.list_async(
        {"customer": upgraded["stripe_customer_id"]}
    )
    reasons = [invoice.billing_reason for invoice in stripe_invoices.data]
    assert "subscription_update" in reasons, reasons

    # Downgrade to free: at the period end; the tier stays pro until then.
    to_free = await _post(stack, user_id, "downgrade", tier="free")
    assert to_free["cancel_at_period_end"] is True and to_free["tier"] == "pro"
    back = await _post(stack, user_id, "reactivate")
    assert back["cancel_at_period_end"] is False and back["tier"] == "pro"

    # Up and down again: each a new Stripe operation, none answered from an old key.
    assert (await _post(stack, user_id, "upgrade", tier="enterprise"))["tier"] == "enterprise"
    assert (await _post(stack, user_id, "downgrade", tier="pro"))["tier"] == "pro"
    writes = await _subscription_writes(stack, subscription_id)
    mine = [
        w for w in writes if (w["idempotency_key"] or "").startswith(f"subscription-{user_id}/")
    ]
    assert len(mine) == 6, mine  # create, down, to free, reactivate, up, down
    assert not any(w["replayed"] for w in mine)
    assert len({w["idempotency_key"] for w in mine}) == 6

    # Cancel; the sandbox clock passes the period end; Stripe ends it; the webhook
    # (customer.subscription.deleted) makes the workflow re-read it: free.
    canceled = await _post(stack, user_id, "cancel")
    assert canceled["cancel_at_period_end"] is True and canceled["tier"] == "pro"
    clock = (await stack.sandbox.http.get("/_sandbox/clock")).json()
    period_end = at_stripe["items"]["data"][0]["current_period_end"]
    advance = await stack.sandbox.http.post(
        "/_sandbox/clock/advance", json={"seconds": period_end - clock["now"] + 60}
    )
    assert advance.status_code == 200, advance.text
    ended = await eventually(
        lambda: stack.subscription(user_id), lambda body: body["tier"] == "free", seconds=30
    )
    assert ended["status"] == "canceled"
    assert await _tiers(db_pool, user_id) == ("free", "free")

    refused = await stack.api.post(f"/v1/users/{user_id}/subscription/cancel", headers=auth())
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Cannot cancel subscription without active Stripe billing"
    )

    # The invoice events are applied in their own time (the inbox hands them over after
    # acknowledging Stripe): wait until the mirror holds more than one invoice.
    await eventually(
        lambda: stack.api.get(f"/v1/users/{user_id}/invoices?limit=100", headers=auth()),
        lambda response: len(response.json()["data"]) > 1,
        seconds=30,
    )
    listed = await stack.api.get(f"/v1/users/{user_id}/invoices?limit=1", headers=auth())
    assert listed.status_code == 200
    assert len(listed.json()["data"]) == 1 and listed.json()["has_more"] is True
    first = listed.json()["data"][0]
    assert first["id"].startswith("in_") and first["subscription_id"] == subscription_id
    rest = await stack.api.get(
        f"/v1/users/{user_id}/invoices?starting_after={first['id']}&limit=100", headers=auth()
    )
    assert rest.json()["data"] and first["id"] not in [i["id"] for i in rest.json()["data"]]
    await record_history(stack.temporal, subscription_workflow_id(user_id), "subscription_journey")


async def test_unknown_and_signing_up_users(billing_stack: BillingStack) -> None:
    missing = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/v1/users/{missing}/subscription"),
        ("POST", f"/v1/users/{missing}/subscription/cancel"),
        ("GET", f"/v1/users/{missing}/invoices"),
    ]:
        response = await billing_stack.api.request(method, path, headers=auth())
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "user_not_found"


@pytest.mark.slow
async def test_retried_upgrade_with_same_key_is_one_change(
    billing_stack: BillingStack,
) -> None:
    """Same Idempotency-Key → the first answer, one Stripe change."""
    stack = billing_stack
    user_id = await stack.signup()
    headers = {**auth(), "Idempotency-Key": f"upgrade-{uuid.uuid4()}"}
    path = f"/v1/users/{user_id}/subscription/upgrade"
    first = await stack.api.post(
        path, json={"tier": "pro", "payment_method": CARD}, headers=headers
    )
    assert first.status_code == 200, first.text
    second = await stack.api.post(
        path, json={"tier": "pro", "payment_method": CARD}, headers=headers
    )
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    creates = [
        entry
        for entry in await stack.sandbox.requests()
        if entry["method"] == "POST"
        and entry["path"] == "/v1/subscriptions"
        and (entry["idempotency_key"] or "").startswith(f"subscription-{user_id}/")
    ]
    assert len(creates) == 1
    other = await stack.api.post(path, json={"tier": "enterprise"}, headers=headers)
    assert other.status_code == 422


async def test_tier_sync_is_blocking(billing_stack: BillingStack, db_pool: asyncpg.Pool) -> None:
    """The users.tier write fails → the change fails as a whole."""
    stack = billing_stack
    user_id = await stack.signup()
    function = f"refuse_tier_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(
        f"""
        CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = '{user_id}'::uuid AND NEW.tier IS DISTINCT FROM OLD.tier THEN
                RAISE EXCEPTION 'tier cache refused (test)';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER {function} BEFORE UPDATE ON users
            FOR EACH ROW EXECUTE FUNCTION {function}();
        """
    )
    try:
        failed = await stack.api.put(
            f"/v1/admin/users/{user_id}/tier",
            json={"tier": "enterprise", "reason": "trial"},
            headers=auth(ADMIN_KEY),
        )
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"]["code"] == "billing_write_failed"
        assert await _tiers(db_pool, user_id) == (None, "free")
        assert (
            await db_pool.fetchval(
                "SELECT count(*) FROM tier_audit WHERE user_id = $1", uuid.UUID(user_id)
            )
            == 0
        )
    finally:
        await db_pool.execute(f"DROP TRIGGER {function} ON users; DROP FUNCTION {function}()")
    fixed = await stack.api.put(
        f"/v1/admin/users/{user_id}/tier",
        json={"tier": "enterprise", "reason": "trial"},
        headers=auth(ADMIN_KEY),
    )
    assert fixed.status_code == 200, fixed.text
    assert await _tiers(db_pool, user_id) == ("enterprise", "enterprise")
