"""Reconciliation's comparisons (pure): which Stripe objects are out of step, and which
repairs are safe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from activities.reconcile_compare import compare_owned, compare_subscriptions
from onramp.repositories.billing import BillingRow
from onramp.repositories.users import SavedStripeIds

NOW = 1_800_000_000.0
OLD = int(NOW) - 7200
GRACE = 600.0


def _user(status: str = "active", customer: str | None = None) -> SavedStripeIds:
    return SavedStripeIds(
        user_id=str(uuid.uuid4()),
        status=status,
        stripe_customer_id=customer,
        connect_account_id=None,
        created_at=datetime.now(UTC),
    )


def _customer(cid: str, created: int = OLD, **metadata: str) -> dict[str, Any]:
    return {"id": cid, "object": "customer", "created": created, "metadata": metadata}


def _mirror(user_id: str, sub: str, status: str = "active", price: str = "price_pro") -> BillingRow:
    return BillingRow(
        user_id=user_id,
        tier="pro",
        status=status,
        billing_cycle="monthly",
        stripe_subscription_id=sub,
        stripe_price_id=price,
        cancel_at_period_end=False,
        current_period_end=None,
        grace_until=None,
        admin_override_tier=None,
        admin_override_reason=None,
        admin_override_by=None,
        admin_override_at=None,
    )


def _sub(
    sid: str, customer: str, status: str = "active", price: str = "price_pro"
) -> dict[str, Any]:
    return {
        "id": sid,
        "customer": customer,
        "status": status,
        "created": OLD,
        "metadata": {},
        "items": {"data": [{"price": {"id": price}}]},
    }


def test_customers() -> None:
    saved = _user(customer="cus_saved0001")
    signing_up = _user(status="signing_up")
    users = {saved.user_id: saved, signing_up.user_id: signing_up}
    objects = [
        _customer("cus_saved0001", user_id=saved.user_id, generation="0"),
        _customer("cus_other0001", user_id=saved.user_id, generation="1"),
        _customer("cus_byhand001", user_id=saved.user_id),
        _customer("cus_fresh0001", created=int(NOW) - 10, user_id=saved.user_id, generation="2"),
        _customer("cus_nouser001", user_id=str(uuid.uuid4()), generation="0"),
        _customer(
            "cus_inflight1", created=int(NOW) - 10, user_id=signing_up.user_id, generation="0"
        ),
        _customer("cus_notours01"),
        _customer("cus_badmeta01", user_id="not-a-uuid"),
    ]
    found = compare_owned(objects, users, object_type="customer", now=NOW, grace_seconds=GRACE)
    by_id = {c.finding.object_id: c for c in found}
    assert set(by_id) == {"cus_other0001", "cus_byhand001", "cus_fresh0001", "cus_nouser001"}
    assert by_id["cus_other0001"].repair == "delete_customer"
    assert by_id["cus_nouser001"].repair == "delete_customer"
    assert by_id["cus_byhand001"].repair is None  # not made by onramp
    assert by_id["cus_fresh0001"].repair is None  # inside the grace
    assert by_id["cus_other0001"].finding.detail == {
        "reason": "not_saved_id",
        "saved_id": "cus_saved0001",
    }
    assert by_id["cus_nouser001"].finding.detail == {"reason": "no_user"}


def test_accounts_are_never_repaired() -> None:
    user = _user()
    found = compare_owned(
        [_customer("acct_other001", user_id=user.user_id, generation="0")],
        {user.user_id: user},
        object_type="account",
        now=NOW,
        grace_seconds=GRACE,
    )
    assert [(c.finding.kind, c.repair) for c in found] == [("orphan", None)]


def test_subscriptions() -> None:
    user = _user(customer="cus_owner0001")
    owners = {"cus_owner0001": user}
    mirrors = {user.user_id: _mirror(user.user_id, "sub_mirror001")}
    objects = [
        _sub("sub_mirror001", "cus_owner0001", status="past_due"),
        _sub("sub_oldcancel", "cus_owner0001", status="canceled"),
        _sub("sub_secondone", "cus_owner0001"),
        _sub("sub_notours01", "cus_stranger1"),
    ]
    found = compare_subscriptions(objects, owners, mirrors, now=NOW, grace_seconds=GRACE)
    kinds = {c.finding.object_id: (c.finding.kind, c.repair) for c in found}
    assert kinds == {
        "sub_mirror001": ("drift", "reread_subscription"),
        "sub_secondone": ("orphan", None),
    }
    in_step = compare_subscriptions(
        [_sub("sub_mirror001", "cus_owner0001")], owners, mirrors, now=NOW, grace_seconds=GRACE
    )
    assert in_step == []
    price_drift = compare_subscriptions(
        [_sub("sub_mirror001", "cus_owner0001", price="price_ent")],
        owners,
        mirrors,
        now=NOW,
        grace_seconds=GRACE,
    )
    assert price_drift[0].finding.detail["stripe_price"] == "price_ent"
