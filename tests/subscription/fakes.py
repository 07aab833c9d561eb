"""Same-named fake activities for `subscription-<user>` on the time-skipping server.

A test owns one `FakeBilling` and steers Stripe's side through `subscription`; the
fakes record what the workflow wrote and sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.contracts.common import ReadStripeObjectInput, SendEmailInput, UserRecord, UserRef
from workflows.contracts.subscription import (
    BillingConfig,
    InvoiceSnapshot,
    RecordBillingInput,
    RecordInvoiceInput,
    SubscriptionSnapshot,
)

PRO_PRICE = "price_fakepro000001"


class FakeBilling:
    def __init__(self, *, continue_as_new_after: int = 1000, grace_days: float = 7) -> None:
        self.config = BillingConfig(
            prices={"pro_monthly": PRO_PRICE},
            grace_seconds=grace_days * 24 * 3600,
            continue_as_new_after=continue_as_new_after,
            search_attributes=False,
        )
        self.subscription = SubscriptionSnapshot(
            subscription_id="sub_fake00000001",
            customer_id="cus_fake00000001",
            status="active",
            created=datetime(2026, 1, 1, tzinfo=UTC),
            item_id="si_fake0000001",
            price_id=PRO_PRICE,
            billing_cycle="monthly",
        )
        self.records: list[RecordBillingInput] = []
        self.invoices: list[RecordInvoiceInput] = []
        self.emails: list[SendEmailInput] = []
        self.subscription_reads = 0
        # Set to an error type to make every re-read fail with it (Stripe refusing).
        self.refuse_reads: str | None = None
        self.refuse_invoice_reads: str | None = None

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="billing_config")
        async def billing_config() -> BillingConfig:
            return self.config

        @activity.defn(name="record_billing")
        async def record_billing(request: RecordBillingInput) -> None:
            self.records.append(request)

        @activity.defn(name="record_invoice")
        async def record_invoice(request: RecordInvoiceInput) -> None:
            self.invoices.append(request)

        @activity.defn(name="read_subscription")
        async def read_subscription(request: ReadStripeObjectInput) -> SubscriptionSnapshot:
            self.subscription_reads += 1
            if self.refuse_reads is not None:
                raise ApplicationError(
                    f"subscriptions.retrieve: Stripe answered ({self.refuse_reads})",
                    type=self.refuse_reads,
                    non_retryable=self.refuse_reads != errors.STRIPE_UNAVAILABLE,
                )
            return self.subscription.model_copy()

        @activity.defn(name="read_user")
        async def read_user(request: UserRef) -> UserRecord:
            return UserRecord(
                user_id=request.user_id, email="sam@example.com", username="sam",
                status="active", wants_payouts=False,
                stripe_customer_id=self.subscription.customer_id, stripe_customer_generation=0,
                connect_account_id=None, connect_account_generation=0, tier="free",
            )  # fmt: skip

        @activity.defn(name="read_invoice")
        async def read_invoice(request: ReadStripeObjectInput) -> InvoiceSnapshot:
            if self.refuse_invoice_reads is not None:
                raise ApplicationError(
                    f"invoices.retrieve: Stripe answered ({self.refuse_invoice_reads})",
                    type=self.refuse_invoice_reads,
                    non_retryable=True,
                )
            return InvoiceSnapshot(
                invoice_id=request.stripe_id,
                customer_id=self.subscription.customer_id,
                subscription_id=self.subscription.subscription_id,
                status="paid" if self.subscription.status == "active" else "open",
                currency="usd",
                created=datetime(2026, 1, 1, tzinfo=UTC),
            )

        @activity.defn(name="send_email")
        async def send_email(request: SendEmailInput) -> str:
            self.emails.append(request)
            return f"<{request.outbox_id}@onramp.local>"

        return [
            billing_config, record_billing, record_invoice, read_subscription, read_invoice,
            send_email, read_user,
        ]  # fmt: skip
