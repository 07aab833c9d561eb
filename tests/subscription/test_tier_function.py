"""The tier as one pure function of the re-read subscription and local state (SPEC 3.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.contracts import BillingConfig, SubscriptionSnapshot, SubscriptionState
from workflows.subscription_state import adopts, apply_snapshot, compute_tier, tier_of_price

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = BillingConfig(prices={"pro_monthly": "price_pro", "enterprise_yearly": "price_ent"})


def _snap(
    status: str = "active", price: str = "price_pro", **extra: object
) -> SubscriptionSnapshot:
    values: dict[str, object] = {
        "subscription_id": "sub_aaaaaaaa",
        "customer_id": "cus_aaaaaaaa",
        "status": status,
        "created": NOW - timedelta(days=10),
        "price_id": price,
        **extra,
    }
    return SubscriptionSnapshot.model_validate(values)


def test_tier_of_price_uses_configuration_then_lookup_key() -> None:
    assert tier_of_price(CONFIG, "price_ent", None) == "enterprise"
    assert tier_of_price(CONFIG, "price_other", "onramp_pro_yearly") == "pro"
    assert tier_of_price(CONFIG, "price_other", None) is None


def test_status_and_grace_decide_the_tier() -> None:
    state = SubscriptionState(user_id="u")
    assert compute_tier(state, NOW) == "free"
    for status, expected in [
        ("active", "pro"), ("trialing", "pro"), ("canceled", "free"), ("unpaid", "free"),
        ("incomplete", "free"),
    ]:  # fmt: skip
        new, _ = apply_snapshot(state, _snap(status), CONFIG, NOW, through_stripe_change=False)
        assert new.tier == expected, status
    past_due, started = apply_snapshot(
        state, _snap("past_due"), CONFIG, NOW, through_stripe_change=False
    )
    assert started and past_due.tier == "pro"
    assert past_due.grace_until == NOW + timedelta(days=7)
    assert compute_tier(past_due, NOW + timedelta(days=7)) == "free"
    again, started = apply_snapshot(
        past_due, _snap("past_due"), CONFIG, NOW + timedelta(days=1), through_stripe_change=False
    )
    assert not started and again.grace_until == past_due.grace_until
    paid, _ = apply_snapshot(past_due, _snap(), CONFIG, NOW, through_stripe_change=False)
    assert paid.grace_until is None and paid.tier == "pro"


def test_admin_override_holds_until_a_change_through_stripe() -> None:
    state, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap(), CONFIG, NOW, through_stripe_change=True
    )
    state.admin_override_tier = "enterprise"
    state.admin_override_at = NOW
    assert compute_tier(state, NOW) == "enterprise"
    same, _ = apply_snapshot(state, _snap(), CONFIG, NOW, through_stripe_change=False)
    assert same.tier == "enterprise", "a re-read without change keeps the override"
    changed, _ = apply_snapshot(
        state, _snap(cancel_at_period_end=True), CONFIG, NOW, through_stripe_change=False
    )
    assert changed.tier == "pro" and changed.admin_override_tier is None
    own, _ = apply_snapshot(state, _snap(), CONFIG, NOW, through_stripe_change=True)
    assert own.tier == "pro"


def test_an_old_subscription_ending_does_not_replace_the_current_one() -> None:
    state, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap(), CONFIG, NOW, through_stripe_change=True
    )
    old = _snap("canceled", subscription_id="sub_oldoldold", created=NOW - timedelta(days=90))
    assert not adopts(state, old)
    newer = _snap(subscription_id="sub_newnewnew", created=NOW)
    assert adopts(state, newer)
