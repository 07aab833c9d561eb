"""Reconciliation against the sandbox with drift planted directly (no webhook): each
case found with its kind, the safe ones repaired by the next (non-dry) run, a third run
finding them resolved, and the healthy user untouched throughout."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api import reconcile_metrics
from api.app import create_app
from tests.reconcile.conftest import AGE, ReconcileStack
from tests.support.harness import (
    ADMIN_KEY,
    auth,
    make_api_settings,
    open_app_client,
    temporal_address,
)
from tests.support.histories import record_history
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


async def _user(stack: ReconcileStack, customer_id: str | None = None, tier: str = "free") -> str:
    user_id = str(uuid.uuid4())
    await stack.db.execute(
        "INSERT INTO users (id, email, username, status, stripe_customer_id, tier, created_at) "
        "VALUES ($1, $2, 'planted', 'active', $3, $4, now() - interval '3 hours')",
        user_id,
        f"{user_id[:8]}@example.com",
        customer_id,
        tier,
    )
    return user_id


async def _customer(stack: ReconcileStack, **metadata: str) -> str:
    (customer_id,) = await stack.plant(
        "customers", {"metadata": metadata, "created": stack.now - AGE}
    )
    return customer_id


async def _subscribed_user(stack: ReconcileStack) -> tuple[str, str, str]:
    """A user whose saved customer has an active pro subscription, mirrored exactly."""
    user_id = str(uuid.uuid4())
    customer_id = await _customer(stack, user_id=user_id, generation="0")
    await stack.db.execute(
        "INSERT INTO users (id, email, username, status, stripe_customer_id, tier) "
        "VALUES ($1, $2, 'planted', 'active', $3, 'pro')",
        user_id,
        f"{user_id[:8]}@example.com",
        customer_id,
    )
    price = stack.prices["STRIPE_PRICE_PRO_MONTHLY"]
    (sub_id,) = await stack.plant(
        "subscriptions",
        {
            "customer": customer_id,
            "price": price,
            "status": "active",
            "metadata": {"user_id": user_id},
            "created": stack.now - AGE,
        },
    )
    await stack.db.execute(
        "INSERT INTO billing (user_id, tier, status, billing_cycle, stripe_subscription_id, "
        "stripe_price_id) VALUES ($1, 'pro', 'active', 'monthly', $2, $3)",
        user_id,
        sub_id,
        price,
    )
    return user_id, customer_id, sub_id


async def _open(stack: ReconcileStack) -> dict[tuple[str, str], dict[str, Any]]:
    rows = await stack.db.fetch(
        "SELECT kind, object_id, user_id::text, repaired_at, repair_note, resolved_at "
        "FROM reconcile_findings WHERE resolved_at IS NULL"
    )
    return {(row["kind"], row["object_id"]): dict(row) for row in rows}


async def _billing(stack: ReconcileStack, user_id: str) -> dict[str, Any]:
    row = await stack.db.fetchrow(
        "SELECT b.tier, b.status, b.stripe_subscription_id, b.stripe_price_id, u.tier AS cached "
        "FROM billing b JOIN users u ON u.id = b.user_id WHERE b.user_id = $1",
        user_id,
    )
    assert row is not None
    return dict(row)


async def _exists(stack: ReconcileStack, customer_id: str) -> bool:
    customer = await stack.stripe.v1.customers.retrieve_async(customer_id)
    return not customer.to_dict().get("deleted")


async def test_planted_drift_is_found_repaired_and_resolved(
    reconcile_stack: ReconcileStack,
) -> None:
    stack = reconcile_stack
    # Healthy: a subscribed user in step with Stripe, and one without billing.
    healthy, healthy_customer, healthy_sub = await _subscribed_user(stack)
    plain = await _user(stack, await _customer(stack))
    # Orphans: customers naming a user who saved another (one onramp made, one made by
    # hand in the dashboard), and one onramp made for a user who no longer exists.
    owner_customer = await _customer(stack)
    owner = await _user(stack, owner_customer)
    orphan_made = await _customer(stack, user_id=owner, generation="1")
    orphan_by_hand = await _customer(stack, user_id=owner)
    orphan_no_user = await _customer(stack, user_id=str(uuid.uuid4()), generation="0")
    # Missing: a saved customer deleted in the sandbox.
    gone_customer = await _customer(stack)
    gone_owner = await _user(stack, gone_customer)
    await stack.delete(gone_customer)
    # Drift: a plan changed in Stripe whose webhook never came.
    drifted, _, drifted_sub = await _subscribed_user(stack)
    enterprise = stack.prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    await stack.change_subscription(drifted_sub, price=enterprise)
    # Stuck: a checkout `confirming` for two hours.
    stuck_user = await _user(stack)
    await stack.db.execute(
        "INSERT INTO checkout_runs (run_id, workflow_id, user_id, attempt, tier, billing_cycle, "
        "checkout_session_id, payment_state, updated_at) VALUES ($1, $2, $3, 1, 'pro', "
        "'monthly', $4, 'confirming', now() - interval '2 hours')",
        f"run-{stuck_user}",
        f"checkout-{stuck_user}",
        stuck_user,
        f"cs_test_{uuid.uuid4().hex}",
    )
    healthy_before = await _billing(stack, healthy)
    drifted_before = await _billing(stack, drifted)

    expected = {
        ("orphan", orphan_made): owner,
        ("orphan", orphan_by_hand): owner,
        ("orphan", orphan_no_user): None,
        ("missing", gone_customer): gone_owner,
        ("drift", drifted_sub): drifted,
        ("stuck", f"run-{stuck_user}"): stuck_user,
    }

    # 1. A dry run finds every planted case, with its kind, and repairs nothing.
    first = await stack.reconcile(dry_run=True)
    assert first.complete and first.repairs == 0
    found = await _open(stack)
    assert set(found) == set(expected), set(found) ^ set(expected)
    for key, user_id in expected.items():
        if key != ("orphan", orphan_no_user):
            assert found[key]["user_id"] == user_id, key
    assert all(row["repaired_at"] is None for row in found.values())
    assert await _exists(stack, orphan_made) and await _exists(stack, orphan_no_user)
    assert await _billing(stack, drifted) == drifted_before

    # 2. The next run repairs the safe ones: the orphans onramp made are deleted, the
    # drifted subscription is re-read by its workflow and the mirror follows.
    second = await stack.reconcile()
    await record_history(stack.env.client, second.run_id, "reconcile_planted_drift")
    assert second.complete and second.repairs == 3
    repaired = {key for key, row in (await _open(stack)).items() if row["repaired_at"]}
    assert repaired == {
        ("orphan", orphan_made),
        ("orphan", orphan_no_user),
        ("drift", drifted_sub),
    }
    assert not await _exists(stack, orphan_made)
    assert not await _exists(stack, orphan_no_user)
    assert await _exists(stack, orphan_by_hand)  # not onramp's: flagged only
    mirror = await eventually(
        lambda: _billing(stack, drifted),
        lambda row: row["stripe_price_id"] == enterprise,
        seconds=60,
    )
    assert mirror["tier"] == "enterprise" and mirror["cached"] == "enterprise"
    assert mirror["status"] == "active" and mirror["stripe_subscription_id"] == drifted_sub

    # 3. A third run finds the repaired cases in step (resolved); the rest stay open.
    third = await stack.reconcile()
    assert third.complete and third.repairs == 0
    still_open = await _open(stack)
    assert set(still_open) == {
        ("orphan", orphan_by_hand),
        ("missing", gone_customer),
        ("stuck", f"run-{stuck_user}"),
    }

    # Nothing else was touched: the healthy users, their customers and subscription.
    assert await _billing(stack, healthy) == healthy_before
    assert await _exists(stack, healthy_customer) and await _exists(stack, owner_customer)
    assert (await stack.stripe.v1.subscriptions.retrieve_async(healthy_sub)).status == "active"
    saved = await stack.db.fetchval("SELECT stripe_customer_id FROM users WHERE id = $1", plain)
    assert saved is not None and await _exists(stack, saved)

    await _check_admin_route_and_metrics(stack, orphan_by_hand)


async def _check_admin_route_and_metrics(stack: ReconcileStack, open_orphan: str) -> None:
    settings = make_api_settings(stack.database_url, temporal_address(stack.env), stack.task_queue)
    async for api in open_app_client(create_app(settings)):
        refused = await api.get("/v1/admin/reconciliation", headers=auth())
        assert refused.status_code in (401, 403)
        answer = await api.get(
            "/v1/admin/reconciliation", params={"kind": "orphan"}, headers=auth(ADMIN_KEY)
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [f["object_id"] for f in body["findings"]] == [open_orphan]
        assert body["open_counts"] == {"orphan": 1, "missing": 1, "drift": 0, "stuck": 1}
        assert len(body["runs"]) == 3 and body["runs"][0]["outcome"] == "complete"
        assert body["runs"][-1]["dry_run"] is True
        drift = await api.get(
            "/v1/admin/reconciliation", params={"kind": "drift"}, headers=auth(ADMIN_KEY)
        )
        assert drift.json()["findings"] == []
        await reconcile_metrics.refresh(stack.db)
        for kind, count in {"orphan": 1, "missing": 1, "drift": 0, "stuck": 1}.items():
            assert reconcile_metrics.FINDINGS.labels(kind)._value.get() == count
        assert reconcile_metrics.LAST_RUN._value.get() > 0
        metrics = await api.get("/metrics")
        assert 'onramp_reconcile_findings{kind="orphan"} 1.0' in metrics.text
        assert "onramp_reconcile_duration_seconds" in metrics.text
