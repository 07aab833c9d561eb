"""The tier as one pure function of the re-read subscription and local state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.contracts.subscription import (
    BillingConfig,
    InvoiceSnapshot,
    PendingPayment,
    SubscriptionSnapshot,
    SubscriptionState,
)
from workflows.subscription_state import (
    apply_snapshot,
    billing_record,
    compute_tier,
    owns,
    retry_delay,
    second_subscription,
    settle_pending_payment,
    tier_of_price,
)

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


def test_a_second_subscription_never_bills_beside_the_first() -> None:
    state, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap(), CONFIG, NOW, through_stripe_change=True
    )
    assert second_subscription(state, _snap()) == "apply"
    old = _snap("canceled", subscription_id="sub_oldoldold", created=NOW - timedelta(days=90))
    assert second_subscription(state, old) == "ignore"
    newer_paid = _snap(subscription_id="sub_newnewnew", created=NOW)
    assert second_subscription(state, newer_paid) == "cancel_other"
    unpaid_attempt = _snap("incomplete", subscription_id="sub_newnewnew", created=NOW)
    assert second_subscription(state, unpaid_attempt) == "cancel_other"
    waiting, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap("incomplete"), CONFIG, NOW, through_stripe_change=True
    )
    assert second_subscription(waiting, newer_paid) == "replace_current"
    ended, _ = apply_snapshot(state, _snap("canceled"), CONFIG, NOW, through_stripe_change=False)
    assert second_subscription(ended, newer_paid) == "apply"


def test_incomplete_is_not_live_and_ownership_needs_the_saved_customer() -> None:
    waiting, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap("incomplete"), CONFIG, NOW, through_stripe_change=True
    )
    assert not waiting.has_live_subscription and waiting.tier == "free"
    assert not owns(waiting, "cus_aaaaaaaa"), "no saved customer: nothing is owned"
    waiting.stripe_customer_id = "cus_aaaaaaaa"
    assert owns(waiting, "cus_aaaaaaaa") and not owns(waiting, "cus_bbbbbbbb")


def _pending(kind: str = "new_subscription") -> PendingPayment:
    return PendingPayment.model_validate(
        {
            "kind": kind,
            "subscription_id": "sub_aaaaaaaa",
            "invoice_id": "in_aaaaaaaa",
            "hosted_invoice_url": "https://stripe.example/i/in_aaaaaaaa",
            "price_id": "price_pro",
            "since": NOW,
            "recheck_at": NOW + timedelta(minutes=30),
        }
    )


def _invoice(status: str) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        invoice_id="in_aaaaaaaa", customer_id="cus_aaaaaaaa", status=status, currency="usd",
        created=NOW,
    )  # fmt: skip


def test_a_payment_waits_until_stripe_says_paid_failed_for_good_or_expired() -> None:
    pending = _pending()
    assert settle_pending_payment(pending, _snap("incomplete")) is pending
    assert settle_pending_payment(pending, None, _invoice("open")) is pending
    assert settle_pending_payment(pending, None, _invoice("paid")) is None
    assert settle_pending_payment(pending, None, _invoice("void")) is None
    assert settle_pending_payment(pending, _snap("active")) is None
    assert settle_pending_payment(pending, _snap("incomplete_expired")) is None
    change = _pending("price_change")
    assert settle_pending_payment(change, _snap(pending_price_id="price_ent")) is change
    assert settle_pending_payment(change, _snap()) is None, "applied or expired"
    # While it waits, the tier is the old one and the row says requires_action.
    state, _ = apply_snapshot(
        SubscriptionState(user_id="u"), _snap("incomplete"), CONFIG, NOW, through_stripe_change=True
    )
    state.pending_payment = pending
    record = billing_record(state)
    assert (record.tier, record.payment_state) == ("free", "requires_action")
    assert record.payment_action_url == pending.hosted_invoice_url


def test_pending_events_back_off_to_a_cap() -> None:
    config = BillingConfig(retry_initial_seconds=30, retry_max_seconds=900)
    waits = [retry_delay(config, attempts).total_seconds() for attempts in range(1, 8)]
    assert waits == [30, 60, 120, 240, 480, 900, 900]
