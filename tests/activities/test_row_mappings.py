"""Activities map repository rows to the contract types stored in workflow history (and
contract inputs to rows): every field is carried, none is invented, so a column added to
a table changes no history unless a mapping says so."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.billing import audit_row, billing_row, invoice_row
from activities.checkout import new_run, run_change
from activities.onboarding import account_flags, token_record
from activities.users import user_record
from onramp.repositories.onboarding_tokens import OnboardingTokenRow
from onramp.repositories.users import UserRow
from workflows.contracts.checkout import RecordCheckoutSessionInput, RecordCheckoutStateInput
from workflows.contracts.onboarding import ConnectAccountSnapshot
from workflows.contracts.subscription import BillingRecord, InvoiceSnapshot, TierAudit

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def test_user_row_to_record() -> None:
    row = UserRow(
        user_id="u1",
        email="a@example.com",
        username="a",
        status="active",
        wants_payouts=True,
        stripe_customer_id="cus_abcdef",
        stripe_customer_generation=2,
        connect_account_id="acct_abcdef",
        connect_account_generation=3,
        tier="pro",
        password_set_at=WHEN,
    )
    record = user_record(row)
    # The password's timestamp is the API's business, not the workflows'.
    assert record.model_dump(exclude={"new_customer_on_test_clock"}) == row.model_dump(
        exclude={"password_set_at"}
    )
    assert record.new_customer_on_test_clock is False


def test_billing_record_to_row() -> None:
    record = BillingRecord(
        user_id="u1",
        tier="enterprise",
        status="past_due",
        billing_cycle="yearly",
        stripe_subscription_id="sub_abcdef",
        stripe_price_id="price_abcdef",
        cancel_at_period_end=True,
        current_period_end=LATER,
        grace_until=WHEN,
        admin_override_tier="pro",
        admin_override_reason="support",
        admin_override_by="ops",
        admin_override_at=WHEN,
        payment_state="requires_action",
        payment_action_kind="price_change",
        payment_action_invoice_id="in_abcdef",
        payment_action_url="https://invoice.example/abc",
    )
    assert billing_row(record).model_dump() == record.model_dump()


def test_tier_audit_to_row() -> None:
    audit = TierAudit(who="ops", from_tier="free", to_tier="pro", reason="trial")
    assert audit_row("u1", audit).model_dump() == {"user_id": "u1", **audit.model_dump()}


def test_invoice_snapshot_to_row() -> None:
    snapshot = InvoiceSnapshot(
        invoice_id="in_abcdef",
        customer_id="cus_abcdef",
        subscription_id="sub_abcdef",
        number="A-1",
        status="paid",
        currency="usd",
        amount_due=2000,
        amount_paid=2000,
        amount_remaining=0,
        total=2000,
        period_start=WHEN,
        period_end=LATER,
        hosted_invoice_url="https://invoice.example/abc",
        invoice_pdf="https://invoice.example/abc.pdf",
        created=WHEN,
        billing_reason="subscription_cycle",
    )
    expected = snapshot.model_dump(exclude={"invoice_id", "customer_id", "billing_reason"})
    assert invoice_row(snapshot).model_dump() == {"id": "in_abcdef", **expected}


def test_onboarding_token_row_to_record() -> None:
    row = OnboardingTokenRow(
        token_id="t1", user_id="u1", status="in_progress", expires_at=WHEN, has_state=True
    )
    assert token_record(row).model_dump() == row.model_dump()


def test_account_snapshot_to_flags() -> None:
    snapshot = ConnectAccountSnapshot(
        account_id="acct_abcdef",
        details_submitted=True,
        charges_enabled=True,
        payouts_enabled=False,
        requirements_due=["external_account"],
        disabled_reason="requirements.past_due",
        capabilities={"transfers": "pending"},
        required_capabilities=["transfers"],
    )
    assert account_flags(snapshot).model_dump() == snapshot.model_dump(
        exclude={"account_id", "capabilities", "required_capabilities"}
    )


def test_checkout_inputs_to_rows() -> None:
    session = RecordCheckoutSessionInput(
        run_id="r1",
        workflow_id="checkout-u1",
        user_id="u1",
        tier="pro",
        billing_cycle="monthly",
        session_id="cs_test_1",
        session_url="https://checkout.example/1",
    )
    assert new_run(session).model_dump() == session.model_dump()
    state = RecordCheckoutStateInput(
        run_id="r1",
        session_status="complete",
        payment_state="paid",
        payment_outcome="failed",
        provisioning_state="failed",
        provisioning_error="refused",
        password_state="sent",
        subscription_id="sub_abcdef",
    )
    assert run_change(state).model_dump() == state.model_dump()
