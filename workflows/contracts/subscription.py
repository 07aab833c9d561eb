"""The `subscription-<user>` workflow.

Its input, state, updates, the messages of its activities and its typed references.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.contracts.common import (
    STATUS_QUERY,
    BillingCycle,
    QueryRef,
    StripeEventSignal,
    Tier,
    UpdateRef,
    WorkflowRef,
)


def subscription_workflow_id(user_id: str) -> str:
    return f"subscription-{user_id}"


SUBSCRIPTION_WORKFLOW = "SubscriptionWorkflow"
UPGRADE_UPDATE = "upgrade"
DOWNGRADE_UPDATE = "downgrade"
CANCEL_UPDATE = "cancel"
REACTIVATE_UPDATE = "reactivate"
UPDATE_PAYMENT_METHOD_UPDATE = "update_payment_method"
ADMIN_OVERRIDE_UPDATE = "admin_override"
CHECKOUT_HANDOVER_UPDATE = "checkout_handover"
OPEN_PAYMENT_METHOD_SETUP_UPDATE = "open_payment_method_setup"


class BillingConfig(BaseModel):
    """What the subscription workflow needs from configuration, read by an activity."""

    prices: dict[str, str] = Field(
        default_factory=dict, description="`<tier>_<cycle>` → Stripe price id"
    )
    proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"
    grace_seconds: float = 7 * 24 * 3600
    continue_as_new_after: int = 1000
    # An event's re-read retries this long; then the event waits in the state as pending
    # and the run loop re-reads it with a doubling wait (initial → max), for ever.
    reread_budget_seconds: float = 120.0
    retry_initial_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    # How often an invoice that waits for the customer is re-read without any event.
    payment_recheck_seconds: float = 1800.0
    # Off only where the server has no onramp search attributes (the time-skipping server).
    search_attributes: bool = True


class SubscriptionSnapshot(BaseModel):
    """A Stripe subscription as re-read from Stripe, reduced to what onramp decides on."""

    subscription_id: str
    customer_id: str
    status: str
    created: datetime
    item_id: str | None = None
    price_id: str | None = None
    price_lookup_key: str | None = None
    billing_cycle: BillingCycle | None = None
    cancel_at_period_end: bool = False
    current_period_end: datetime | None = None
    latest_invoice_id: str | None = None
    default_payment_method_id: str | None = None
    # Stripe's `pending_update` (pending_if_incomplete): the price that applies once the
    # latest invoice is paid, and when Stripe drops the update otherwise.
    pending_price_id: str | None = None
    pending_update_expires_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class InvoiceSnapshot(BaseModel):
    """A Stripe invoice as re-read from Stripe (the mirror's row)."""

    invoice_id: str
    customer_id: str
    subscription_id: str | None = None
    number: str | None = None
    status: str
    currency: str
    amount_due: int = 0
    amount_paid: int = 0
    amount_remaining: int = 0
    total: int = 0
    period_start: datetime | None = None
    period_end: datetime | None = None
    hosted_invoice_url: str | None = None
    invoice_pdf: str | None = None
    created: datetime
    billing_reason: str | None = None


ENDED_SUBSCRIPTION_STATUSES = ("canceled", "incomplete_expired")


# Statuses of a subscription that bills (or is paid for): the one a user keeps when two
# exist. `incomplete` (first invoice unpaid) is not live: Stripe refuses most changes to
# it and it grants no tier.
PAID_SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due")
NOT_LIVE_SUBSCRIPTION_STATUSES = (*ENDED_SUBSCRIPTION_STATUSES, "incomplete")
PaymentKind = Literal["new_subscription", "price_change", "renewal"]
SubscriptionPaymentState = Literal["settled", "requires_action"]


class PendingPayment(BaseModel):
    """An invoice of the user's subscription that waits for the customer (3-D Secure):
    the next action is Stripe's hosted invoice page; the tier moves only once it is paid."""

    kind: PaymentKind
    subscription_id: str
    invoice_id: str
    hosted_invoice_url: str | None = None
    price_id: str | None = Field(default=None, description="the price that applies once paid")
    since: datetime
    recheck_at: datetime


class PendingEvent(BaseModel):
    """A Stripe event whose re-read Stripe refused: kept, retried, shown to operators."""

    event: StripeEventSignal
    attempts: int = 1
    last_error: str
    retry_at: datetime


class SubscriptionState(BaseModel):
    """The whole state of `subscription-<user>` (carried across continue-as-new)."""

    user_id: str
    tier: Tier = "free"
    status: str = "none"
    billing_cycle: BillingCycle | None = None
    stripe_subscription_id: str | None = None
    subscription_created: datetime | None = None
    subscription_item_id: str | None = None
    stripe_price_id: str | None = None
    price_tier: Tier | None = Field(default=None, description="tier of the Stripe price")
    cancel_at_period_end: bool = False
    current_period_end: datetime | None = None
    grace_until: datetime | None = None
    grace_expired_notified: bool = False
    admin_override_tier: Tier | None = None
    admin_override_reason: str | None = None
    admin_override_by: str | None = None
    admin_override_at: datetime | None = None
    applied_event_ids: list[str] = Field(default_factory=list)
    # The user's saved Stripe customer: a re-read object of another customer is never
    # applied.
    stripe_customer_id: str | None = None
    pending_payment: PendingPayment | None = None
    pending_events: list[PendingEvent] = Field(default_factory=list)

    @property
    def has_live_subscription(self) -> bool:
        return (
            self.stripe_subscription_id is not None
            and self.status not in NOT_LIVE_SUBSCRIPTION_STATUSES
        )


class SubscriptionWorkflowInput(BaseModel):
    """Start input of `subscription-<user>` (also when a Stripe event starts it)."""

    user_id: str
    # Set by continue-as-new only: the state one run hands to the next.
    state: SubscriptionState | None = None


class UpgradeRequest(BaseModel):
    tier: Literal["pro", "enterprise"]
    billing_cycle: BillingCycle = "monthly"
    payment_method: str | None = None


class DowngradeRequest(BaseModel):
    tier: Tier
    billing_cycle: BillingCycle | None = None


class EmptyRequest(BaseModel):
    """Cancel and reactivate carry nothing but their update id."""


class PaymentMethodRequest(BaseModel):
    payment_method: str


class PaymentMethodSetupRequest(BaseModel):
    """Open Stripe's Checkout in setup mode (onramp never sees card numbers)."""

    success_url: str
    cancel_url: str


class PaymentMethodSetup(BaseModel):
    session_id: str
    url: str


class AdminOverrideRequest(BaseModel):
    tier: Tier
    reason: str = Field(min_length=1, max_length=500)
    who: str = Field(min_length=1, max_length=200, description="the API key's name")


class CheckoutHandoverRequest(BaseModel):
    subscription_id: str


class SubscriptionView(BaseModel):
    """What an update answers (the API answers from Postgres instead)."""

    user_id: str
    tier: Tier
    status: str
    stripe_subscription_id: str | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    payment_state: SubscriptionPaymentState = "settled"
    payment_action_url: str | None = None


class BillingRecord(BaseModel):
    """One write of the billing row and the users.tier cache, in one transaction."""

    user_id: str
    tier: Tier
    status: str
    billing_cycle: BillingCycle | None
    stripe_subscription_id: str | None
    stripe_price_id: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    grace_until: datetime | None
    admin_override_tier: Tier | None
    admin_override_reason: str | None
    admin_override_by: str | None
    admin_override_at: datetime | None
    payment_state: SubscriptionPaymentState = "settled"
    payment_action_kind: PaymentKind | None = None
    payment_action_invoice_id: str | None = None
    payment_action_url: str | None = None


class TierAudit(BaseModel):
    who: str
    from_tier: Tier
    to_tier: Tier
    reason: str


class RecordBillingInput(BaseModel):
    record: BillingRecord
    audit: TierAudit | None = None


class RecordInvoiceInput(BaseModel):
    user_id: str
    invoice: InvoiceSnapshot


class AttachPaymentMethodInput(BaseModel):
    customer_id: str
    payment_method: str
    idempotency_key: str


class SetDefaultPaymentMethodInput(BaseModel):
    customer_id: str
    payment_method_id: str
    idempotency_key: str


class CreateSubscriptionInput(BaseModel):
    user_id: str
    workflow_id: str
    customer_id: str
    price_id: str
    payment_method_id: str
    idempotency_key: str


class ChangePriceInput(BaseModel):
    subscription_id: str
    price_id: str
    proration_behavior: str
    idempotency_key: str


class PayInvoiceInput(BaseModel):
    invoice_id: str
    payment_method_id: str | None = None
    idempotency_key: str


class InvoicePaymentResult(BaseModel):
    """What Stripe answered to paying an invoice: paid, waiting for the customer's
    authentication (402 `invoice_payment_intent_requires_action`), or declined."""

    outcome: Literal["paid", "requires_action", "declined"]
    invoice: InvoiceSnapshot
    message: str | None = None


class CreateSetupSessionInput(BaseModel):
    user_id: str
    workflow_id: str
    customer_id: str
    success_url: str
    cancel_url: str
    idempotency_key: str


class SetupSessionSnapshot(BaseModel):
    """A setup-mode Checkout Session re-read, with its SetupIntent's payment method."""

    session_id: str
    status: str
    url: str | None = None
    customer_id: str | None = None
    setup_intent_id: str | None = None
    setup_intent_status: str | None = None
    payment_method_id: str | None = None


class CancelSubscriptionInput(BaseModel):
    subscription_id: str
    # Credit the unused time of a paid duplicate to the customer's balance.
    prorate: bool = False
    idempotency_key: str


class OpenCheckoutCheck(BaseModel):
    open: bool


class SetCancelAtPeriodEndInput(BaseModel):
    subscription_id: str
    cancel_at_period_end: bool
    idempotency_key: str


class SetSubscriptionPaymentMethodInput(BaseModel):
    subscription_id: str
    payment_method_id: str
    idempotency_key: str


SUBSCRIPTION = WorkflowRef(SUBSCRIPTION_WORKFLOW, SubscriptionWorkflowInput, type(None))
SUBSCRIPTION_STATUS = QueryRef(SUBSCRIPTION, STATUS_QUERY, SubscriptionState)
UPGRADE = UpdateRef(SUBSCRIPTION, UPGRADE_UPDATE, UpgradeRequest, SubscriptionView)
DOWNGRADE = UpdateRef(SUBSCRIPTION, DOWNGRADE_UPDATE, DowngradeRequest, SubscriptionView)
CANCEL = UpdateRef(SUBSCRIPTION, CANCEL_UPDATE, EmptyRequest, SubscriptionView)
REACTIVATE = UpdateRef(SUBSCRIPTION, REACTIVATE_UPDATE, EmptyRequest, SubscriptionView)
UPDATE_PAYMENT_METHOD = UpdateRef(
    SUBSCRIPTION, UPDATE_PAYMENT_METHOD_UPDATE, PaymentMethodRequest, SubscriptionView
)


ADMIN_OVERRIDE = UpdateRef(
    SUBSCRIPTION, ADMIN_OVERRIDE_UPDATE, AdminOverrideRequest, SubscriptionView
)

OPEN_PAYMENT_METHOD_SETUP = UpdateRef(
    SUBSCRIPTION, OPEN_PAYMENT_METHOD_SETUP_UPDATE, PaymentMethodSetupRequest, PaymentMethodSetup
)
