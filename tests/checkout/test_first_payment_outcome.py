"""What a complete but unpaid session's subscription and first invoice say (pure)."""

from __future__ import annotations

import pytest

from workflows.checkout_state import first_payment_outcome
from workflows.contracts.checkout import CheckoutSessionSnapshot


def snapshot(subscription: str | None, invoice: str | None) -> CheckoutSessionSnapshot:
    return CheckoutSessionSnapshot(
        session_id="cs_test_a1b2c3",
        status="complete",
        payment_status="unpaid",
        subscription_id="sub_a1b2c3d4",
        subscription_status=subscription,
        invoice_status=invoice,
    )


@pytest.mark.parametrize(
    ("subscription", "invoice", "outcome"),
    [
        # A delayed payment still settling: Stripe has decided nothing yet.
        ("incomplete", "open", None),
        # Some methods count as active while the debit is processing; not paid yet.
        ("active", "open", None),
        ("active", "paid", "paid"),
        ("trialing", "paid", "paid"),
        # Stripe gave up on the first invoice (23 h) or ended the subscription.
        ("incomplete_expired", "void", "failed"),
        ("canceled", "open", "failed"),
        ("past_due", "open", "failed"),
        ("unpaid", "open", "failed"),
        ("incomplete", "uncollectible", "failed"),
        # Not read (an older snapshot): only the session decides.
        (None, None, None),
    ],
)
def test_first_payment_outcome(
    subscription: str | None, invoice: str | None, outcome: str | None
) -> None:
    assert first_payment_outcome(snapshot(subscription, invoice)) == outcome
