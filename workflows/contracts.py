"""Inputs, results, signals, updates and states of every workflow and activity.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids (SPEC 3.0).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Tier = Literal["free", "pro", "enterprise"]
BillingCycle = Literal["monthly", "yearly"]
StripeCustomerMode = Literal["eager", "lazy"]


# Workflow type names: the API starts workflows by name, so it never imports workflow
# modules (which pass activity modules through for their names).
SIGNUP_WORKFLOW = "SignupWorkflow"


def signup_workflow_id(user_id: str) -> str:
    return f"signup-{user_id}"


def onboarding_workflow_id(user_id: str) -> str:
    return f"onboarding-{user_id}"


def checkout_workflow_id(user_id: str) -> str:
    return f"checkout-{user_id}"


def subscription_workflow_id(user_id: str) -> str:
    return f"subscription-{user_id}"


# --- Stripe events, as the webhook router hands them to workflows ---------------------


class StripeEventSignal(BaseModel):
    """A Stripe event as a trigger: ids only, never the object (workflows re-read it)."""

    event_id: str
    type: str
    created: datetime
    livemode: bool = False
    account: str | None = None
    object_id: str = Field(description="id of the event's data.object")
    object_type: str = ""


# --- Users and the shared "ensure" steps --------------------------------------------------


class UserRef(BaseModel):
    user_id: str


class UserRecord(BaseModel):
    """The user row as activities read it."""

    user_id: str
    email: str
    username: str
    status: Literal["signing_up", "active"]
    wants_payouts: bool
    stripe_customer_id: str | None
    stripe_customer_generation: int
    connect_account_id: str | None
    connect_account_generation: int
    tier: Tier
    # Not a column: the worker's STRIPE_TEST_CLOCKS, so the ensure step knows, without a
    # step of its own, whether a new customer gets a test clock first.
    new_customer_on_test_clock: bool = False


class InsertProfileInput(BaseModel):
    user_id: str
    email: str
    username: str
    wants_payouts: bool


class CreateStripeObjectInput(BaseModel):
    """Create the user's customer or Connect account under `<kind>:<user>:<generation>`.

    Parameters are the same whichever workflow asks (SPEC 3.0): the email from the
    stored profile and `metadata.user_id`, nothing that names the caller.
    """

    user_id: str
    email: str
    generation: int
    # The customer's own test clock (STRIPE_TEST_CLOCKS); created under a key of the
    # same user and generation, so every caller passes the same id.
    test_clock: str | None = None


class CreateTestClockInput(BaseModel):
    """Create the user's test clock under `test_clock:<user>:<generation>`.

    `frozen_time` is the start of the UTC day the ensure step ran, so concurrent callers
    (and retries) send the same parameters under the same key.
    """

    user_id: str
    generation: int
    frozen_time: int


class SaveStripeIdInput(BaseModel):
    user_id: str
    stripe_id: str


class SaveStripeIdResult(BaseModel):
    """`saved` when the row now holds `stripe_id`; otherwise the id that was there."""

    saved: bool
    existing_id: str | None


class BumpGenerationInput(BaseModel):
    user_id: str
    seen_generation: int


class DeleteStripeObjectInput(BaseModel):
    stripe_id: str


class EnsuredStripeObject(BaseModel):
    stripe_id: str
    created_by_this_call: bool


# --- Signup ------------------------------------------------------------------------


class SignupInput(BaseModel):
    user_id: str
    email: str
    username: str
    payouts: bool = False
    stripe_customer: StripeCustomerMode = "eager"


class SignupResult(BaseModel):
    user_id: str
    email: str
    username: str
    status: Literal["signing_up", "active"]
    stripe_customer_id: str | None
    connect_account_id: str | None


SignupStep = Literal[
    "profile", "stripe_customer", "connect_account", "complete", "compensating", "failed"
]


class SignupStatus(BaseModel):
    step: SignupStep
    stripe_customer_id: str | None = None
    connect_account_id: str | None = None
    error: str | None = None


# --- Webhook routing: workflow type names, the event signal, signal-with-start inputs ---
# The webhook router (api/webhooks) addresses workflows by these names, so a workflow
# must be registered under exactly this name (`@workflow.defn(name=...)`).

STRIPE_EVENT_SIGNAL = "stripe_event"
CHECKOUT_WORKFLOW = "CheckoutWorkflow"
ONBOARDING_WORKFLOW = "OnboardingWorkflow"
SUBSCRIPTION_WORKFLOW = "SubscriptionWorkflow"


class OnboardingWorkflowInput(BaseModel):
    """Start input of `onboarding-<user>` (also when a Stripe event starts it)."""

    user_id: str
    # Issue 17: how often to re-read the account while a token is in progress (the
    # first interval; each quiet re-read doubles it up to `poll_max_seconds`).
    poll_seconds: float = 60.0
    poll_max_seconds: float = 4 * 3600.0
    # A run continues-as-new after this many handled updates and signals (and whenever
    # the server suggests it), so opens and events never grow one history without end.
    continue_after: int = 200
    # Set by continue-as-new only: what one run hands to the next (open tokens are
    # re-read from Postgres).
    account_id: str | None = None
    applied_event_ids: list[str] = Field(default_factory=list)
    recheck: bool = False


class SubscriptionWorkflowInput(BaseModel):
    """Start input of `subscription-<user>` (also when a Stripe event starts it)."""

    user_id: str
    # Set by continue-as-new only: the state one run hands to the next.
    state: SubscriptionState | None = None


# --- Connect onboarding (issue 17) ----------------------------------------------------
# Update names of `onboarding-<user>`; only token ids travel, never tokens or states.

ISSUE_ONBOARDING_TOKEN_UPDATE = "issue_token"  # noqa: S105
OPEN_ONBOARDING_LINK_UPDATE = "open_link"
ONBOARDING_RETURNED_UPDATE = "account_returned"

OnboardingTokenStatus = Literal["pending", "in_progress", "completed", "expired", "revoked"]


class IssueOnboardingTokenInput(BaseModel):
    token_id: str
    ttl_seconds: int
    poll_seconds: float = 60.0
    poll_max_seconds: float = 4 * 3600.0


class IssueOnboardingTokenResult(BaseModel):
    token_id: str
    expires_at: datetime


class OpenOnboardingLinkInput(BaseModel):
    token_id: str
    public_url: str = Field(description="base URL of the service (refresh/return URLs)")
    # Stripe's refresh_url: the last link was visited or expired, so never reuse it.
    new_link: bool = False


class OpenOnboardingLinkResult(BaseModel):
    """The account link, sealed (`onramp.tokens.seal_text`): an account link is a bearer
    secret, so it travels through history only in a form the API alone can open."""

    sealed_url: str
    expires_at: datetime
    account_id: str


class OnboardingReturnedInput(BaseModel):
    token_id: str


class OnboardingTokenRecord(BaseModel):
    token_id: str
    user_id: str
    status: OnboardingTokenStatus
    expires_at: datetime
    has_state: bool


class InsertOnboardingTokenInput(BaseModel):
    token_id: str
    user_id: str
    expires_at: datetime


class TokenRef(BaseModel):
    token_id: str


class MarkTokenInProgressInput(BaseModel):
    token_id: str
    expires_at: datetime
    # The account link just created, sealed, kept for reuse until `link_expires_at`.
    sealed_link: str | None = None
    link_expires_at: datetime | None = None


class CreateAccountLinkInput(BaseModel):
    """Stripe key: `<workflow id>/<update id>/account_link` (one open = one operation)."""

    account_id: str
    token_id: str
    public_url: str
    workflow_id: str
    operation_id: str


class AccountLinkResult(BaseModel):
    sealed_url: str
    expires_at: datetime


class AccountRef(BaseModel):
    account_id: str


# The account flag Stripe derives from a capability being active.
CAPABILITY_FLAGS = {"card_payments": "charges_enabled", "transfers": "payouts_enabled"}


class ConnectAccountSnapshot(BaseModel):
    """The account as re-read from Stripe: the facts onboarding decides on."""

    account_id: str
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str] = Field(default_factory=list)
    disabled_reason: str | None = None
    # Capability name → `active` / `pending` / `inactive`, as the account says.
    capabilities: dict[str, str] = Field(default_factory=dict)
    # The platform's `CONNECT_CAPABILITIES` when the account was read.
    required_capabilities: list[str] = Field(default_factory=list)

    @property
    def onboarding_complete(self) -> bool:
        """Details submitted and every configured capability active, with the flag it
        implies (card_payments → charges_enabled, transfers → payouts_enabled)."""
        if not self.details_submitted:
            return False
        if not self.required_capabilities:
            return self.charges_enabled
        for name in self.required_capabilities:
            if self.capabilities.get(name) != "active":
                return False
            flag = CAPABILITY_FLAGS.get(name)
            if flag is not None and not getattr(self, flag):
                return False
        return True


class RecordAccountStatusInput(BaseModel):
    user_id: str
    snapshot: ConnectAccountSnapshot


class RecordAccountStatusResult(BaseModel):
    completed_token_ids: list[str] = Field(default_factory=list)


class OnboardingTokenView(BaseModel):
    token_id: str
    status: OnboardingTokenStatus
    expires_at: datetime


class StuckStep(BaseModel):
    """A step Stripe keeps refusing: the workflow keeps its state and tries again."""

    step: str
    error_type: str | None = None
    message: str
    failures: int
    since: datetime
    next_attempt_at: datetime


class OnboardingWorkflowStatus(BaseModel):
    """The `status` query of `onboarding-<user>`, for operators."""

    user_id: str
    account_id: str | None = None
    tokens: list[OnboardingTokenView] = Field(default_factory=list)
    last_snapshot: ConnectAccountSnapshot | None = None
    applied_event_ids: list[str] = Field(default_factory=list)
    # The re-read that failed last and when it is tried again (None: nothing stuck).
    stuck: StuckStep | None = None
    next_poll_at: datetime | None = None
    poll_interval_seconds: float | None = None
    # Updates and signals this run handled (it continues-as-new at `continue_after`).
    handled: int = 0


# --- Subscription lifecycle (`subscription-<user>`, SPEC 3.4) ----------------------------
# Updates are addressed by these names (the API never imports workflow modules).

UPGRADE_UPDATE = "upgrade"
DOWNGRADE_UPDATE = "downgrade"
CANCEL_UPDATE = "cancel"
REACTIVATE_UPDATE = "reactivate"
UPDATE_PAYMENT_METHOD_UPDATE = "update_payment_method"
ADMIN_OVERRIDE_UPDATE = "admin_override"
CHECKOUT_HANDOVER_UPDATE = "checkout_handover"

EmailTemplate = Literal["payment_failed", "downgraded_after_grace", "welcome"]


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
    # applied (SPEC 10 "Ownership").
    stripe_customer_id: str | None = None
    pending_payment: PendingPayment | None = None
    pending_events: list[PendingEvent] = Field(default_factory=list)

    @property
    def has_live_subscription(self) -> bool:
        return (
            self.stripe_subscription_id is not None
            and self.status not in NOT_LIVE_SUBSCRIPTION_STATUSES
        )


# `SubscriptionWorkflowInput.state` refers to `SubscriptionState`, defined just above.
SubscriptionWorkflowInput.model_rebuild()


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


class ReadStripeObjectInput(BaseModel):
    stripe_id: str


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


class SendEmailInput(BaseModel):
    """One email: the outbox id (from the workflow, stable across retries), the template
    and ids only — never a token, a link or a secret."""

    outbox_id: str
    template: EmailTemplate
    user_id: str
    refs: dict[str, str] = Field(default_factory=dict)


# --- Checkout → payment → provisioning (`checkout-<user>`, SPEC 3.3, issue 16) ---------
# Update and signal names of `checkout-<user>`; no token or password is ever a field.

START_CHECKOUT_UPDATE = "start_checkout"
RETRY_PROVISIONING_UPDATE = "retry_provisioning"
CHECKOUT_RETURN_SIGNAL = "checkout_returned"

PaymentState = Literal["unpaid", "confirming", "paid"]
ProvisioningState = Literal["not_started", "queued", "running", "completed", "failed"]
PasswordState = Literal["not_sent", "sent", "set"]
NextAction = Literal["pay", "wait_provisioning", "set_password", "go_to_dashboard"]
SessionStatus = Literal["open", "complete", "expired"]
# Why a run ended without payment (the client is told `pay` again).
PaymentOutcome = Literal["expired", "failed"]


class CheckoutWorkflowInput(BaseModel):
    user_id: str


class StartCheckoutRequest(BaseModel):
    tier: Literal["pro", "enterprise"]
    billing_cycle: BillingCycle = "monthly"


class CheckoutStarted(BaseModel):
    checkout_session_id: str
    url: str
    workflow_id: str


class CheckoutReturnSignal(BaseModel):
    """The user's browser came back through the session's `success_url`."""

    session_id: str


class RetryProvisioningRequest(BaseModel):
    who: str = Field(default="operator", max_length=200)


class RetryProvisioningResult(BaseModel):
    workflow_id: str
    provisioning_state: ProvisioningState


class CheckoutConfig(BaseModel):
    """What `checkout-<user>` needs from the worker's configuration (read by an activity)."""

    prices: dict[str, str] = Field(default_factory=dict, description="`<tier>_<cycle>` → price")
    success_url: str
    cancel_url: str
    reconcile_after_seconds: float = 120.0
    reconcile_max_seconds: float = 3600.0
    # How many times one re-read is tried in the worker before the run shows it stuck.
    reread_attempts: int = 5
    password_token_ttl_seconds: int = 7 * 24 * 3600
    search_attributes: bool = True


class CreateCheckoutSessionInput(BaseModel):
    """Stripe key `<workflow id>/<update id>/create_session`."""

    user_id: str
    workflow_id: str
    customer_id: str
    price_id: str
    success_url: str
    cancel_url: str
    idempotency_key: str


class ExpireCheckoutSessionInput(BaseModel):
    session_id: str
    idempotency_key: str


class CheckoutSessionSnapshot(BaseModel):
    """A Checkout Session as re-read from Stripe."""

    session_id: str
    status: SessionStatus
    payment_status: str
    url: str | None = None
    subscription_id: str | None = None
    customer_id: str | None = None
    # Read with the session (expanded): a session complete but unpaid never says that
    # its delayed payment failed; the subscription and its first invoice do.
    subscription_status: str | None = None
    invoice_status: str | None = None
    # The expanded subscription's customer: ownership is checked on both (SPEC 10).
    subscription_customer_id: str | None = None


class PaidSubscriptionCheck(BaseModel):
    """Whether the user's billing row holds a Stripe subscription that a checkout must
    not duplicate (paid, or still awaiting its first payment), and its status."""

    has_paid_subscription: bool
    tier: Tier = "free"
    subscription_status: str | None = None
    reason: str | None = None


class RecordCheckoutSessionInput(BaseModel):
    """Upsert the run's row (numbered per user) with its current session."""

    run_id: str
    workflow_id: str
    user_id: str
    tier: Tier
    billing_cycle: BillingCycle
    session_id: str
    session_url: str | None = None


class RecordCheckoutStateInput(BaseModel):
    """One state change of a run; None leaves a column as it is."""

    run_id: str
    session_status: SessionStatus | None = None
    payment_state: PaymentState | None = None
    payment_outcome: PaymentOutcome | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_error: str | None = None
    password_state: PasswordState | None = None
    subscription_id: str | None = None


class HandOverInput(BaseModel):
    user_id: str
    subscription_id: str
    update_id: str


class ProvisioningStepInput(BaseModel):
    user_id: str
    run_id: str


class IssuePasswordTokenInput(BaseModel):
    user_id: str
    run_id: str
    token_id: str
    ttl_seconds: int


class SendWelcomeEmailInput(BaseModel):
    """The outbox id is stable across retries; the link is derived inside the send."""

    outbox_id: str
    user_id: str
    token_id: str


class CheckoutStatus(BaseModel):
    """The `status` query of `checkout-<user>`, for operators."""

    user_id: str
    session_id: str | None = None
    tier: Tier | None = None
    billing_cycle: BillingCycle | None = None
    payment_state: PaymentState = "unpaid"
    provisioning_state: ProvisioningState = "not_started"
    password_state: PasswordState = "not_sent"  # noqa: S105 - a state, not a secret
    payment_outcome: PaymentOutcome | None = None
    applied_event_ids: list[str] = Field(default_factory=list)
    last_error: str | None = None
    # A step that keeps failing (Stripe down, refusing the key, answering 400): the run
    # keeps its state and retries it with capped backoff; operators read it here.
    stuck_step: str | None = None
    stuck_since: datetime | None = None
    stuck_attempts: int = 0
    stuck_error: str | None = None
