"""The pure decisions of `checkout-<user>` (no Temporal, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from workflows import errors
from workflows.checkout_state import (
    PaymentRecord,
    SessionDecision,
    closed_refusal,
    decide_session,
    foreign_customers,
    is_decided,
    next_reread_interval,
    price_for,
    start_plan,
)
from workflows.contracts.checkout import CheckoutSessionSnapshot
from workflows.failures import Refusal


def session(**fields: Any) -> CheckoutSessionSnapshot:
    values: dict[str, Any] = {
        "session_id": "cs_test_1",
        "status": "open",
        "payment_status": "unpaid",
        "subscription_id": "sub_1",
        "customer_id": "cus_1",
    }
    return CheckoutSessionSnapshot(**{**values, **fields})


def test_an_open_session_decides_nothing_and_records_nothing() -> None:
    decision = decide_session(session(), async_failed=False, payment_state="unpaid")
    assert decision == SessionDecision("open", None)
    assert not is_decided(decision.outcome)


def test_an_expired_session_is_recorded_unpaid_and_expired() -> None:
    decision = decide_session(session(status="expired"), async_failed=False, payment_state="unpaid")
    assert decision == SessionDecision("expired", PaymentRecord("unpaid", "expired", "expired"))
    assert is_decided("expired")


@pytest.mark.parametrize("payment_status", ["paid", "no_payment_required"])
def test_a_paid_session_records_its_subscription(payment_status: str) -> None:
    decision = decide_session(
        session(status="complete", payment_status=payment_status),
        async_failed=False,
        payment_state="unpaid",
    )
    assert decision == SessionDecision(
        "paid", PaymentRecord("paid", "complete", subscription_id="sub_1")
    )


def test_an_unpaid_complete_session_whose_invoice_was_paid_is_paid() -> None:
    snapshot = session(status="complete", subscription_status="active", invoice_status="paid")
    decision = decide_session(snapshot, async_failed=False, payment_state="confirming")
    assert decision.outcome == "paid"


def test_a_failed_delayed_payment_is_recorded_once_as_failed() -> None:
    by_event = decide_session(
        session(status="complete"), async_failed=True, payment_state="confirming"
    )
    assert by_event == SessionDecision("failed", PaymentRecord("unpaid", "complete", "failed"))
    by_subscription = decide_session(
        session(status="complete", subscription_status="incomplete_expired"),
        async_failed=False,
        payment_state="confirming",
    )
    assert by_subscription.outcome == "failed"


def test_a_confirming_payment_is_recorded_on_the_first_read_only() -> None:
    snapshot = session(status="complete", subscription_status="incomplete", invoice_status="open")
    first = decide_session(snapshot, async_failed=False, payment_state="unpaid")
    assert first == SessionDecision("confirming", PaymentRecord("confirming", "complete"))
    again = decide_session(snapshot, async_failed=False, payment_state="confirming")
    assert again == SessionDecision("confirming", None)
    assert not is_decided("confirming")


def test_ownership_lists_every_customer_that_is_not_the_saved_one() -> None:
    ours = session(subscription_customer_id="cus_1")
    assert foreign_customers(ours, "cus_1") == []
    theirs = session(customer_id="cus_1", subscription_customer_id="cus_2")
    assert foreign_customers(theirs, "cus_1") == ["cus_2"]
    assert foreign_customers(session(customer_id=None), "cus_1") == []


def test_the_reread_wait_starts_over_on_a_trigger_and_doubles_up_to_its_cap() -> None:
    assert next_reread_interval(480, woke=True, first_seconds=120, max_seconds=600) == 120
    assert next_reread_interval(120, woke=False, first_seconds=120, max_seconds=600) == 240
    assert next_reread_interval(480, woke=False, first_seconds=120, max_seconds=600) == 600


def test_a_closed_run_refuses_a_new_start_with_its_reason() -> None:
    assert closed_refusal(None) is None
    assert closed_refusal("paid") == Refusal(
        "this checkout is paid; change plans through the subscription", errors.CHECKOUT_CONFLICT
    )
    ending = closed_refusal("expired")
    assert ending is not None and ending.error_type == errors.CHECKOUT_CLOSED
    assert "(expired)" in ending.message


def test_start_plan_reuses_replaces_creates_or_refuses() -> None:
    assert start_plan(None, (None, None), ("pro", "monthly")) == "create"
    open_session = session()
    assert start_plan(open_session, ("pro", "monthly"), ("pro", "monthly")) == "reuse"
    assert start_plan(open_session, ("pro", "monthly"), ("pro", "yearly")) == "replace"
    assert start_plan(session(status="expired"), ("pro", "monthly"), ("pro", "monthly")) == "create"
    confirming = start_plan(session(status="complete"), ("pro", "monthly"), ("pro", "monthly"))
    assert isinstance(confirming, Refusal) and confirming.error_type == errors.CHECKOUT_CONFLICT


def test_a_plan_without_a_configured_price_is_refused() -> None:
    prices = {"pro_monthly": "price_pro_m"}
    assert price_for(prices, "pro", "monthly") == "price_pro_m"
    missing = price_for(prices, "enterprise", "yearly")
    assert isinstance(missing, Refusal) and missing.error_type == errors.PRICE_NOT_CONFIGURED
