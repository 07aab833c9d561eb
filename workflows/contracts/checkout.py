"""The `checkout-<user>` workflow: checkout → payment → provisioning.

Its input, updates, signal, status, the messages of its activities and its typed
references.

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
    SignalRef,
    Tier,
    UpdateRef,
    WorkflowRef,
)


def checkout_workflow_id(user_id: str) -> str:
    return f"checkout-{user_id}"


CHECKOUT_WORKFLOW = "CheckoutWorkflow"
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
    # The platform's worker that provisions through the hook; None: onramp's workspace.
    provisioning_task_queue: str | None = None


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
    # The expanded subscription's customer: ownership is checked on both.
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


CHECKOUT = WorkflowRef(CHECKOUT_WORKFLOW, CheckoutWorkflowInput, CheckoutStatus)
CHECKOUT_STATUS = QueryRef(CHECKOUT, STATUS_QUERY, CheckoutStatus)
START_CHECKOUT = UpdateRef(CHECKOUT, START_CHECKOUT_UPDATE, StartCheckoutRequest, CheckoutStarted)
RETRY_PROVISIONING = UpdateRef(
    CHECKOUT, RETRY_PROVISIONING_UPDATE, RetryProvisioningRequest, RetryProvisioningResult
)


CHECKOUT_RETURNED = SignalRef(CHECKOUT, CHECKOUT_RETURN_SIGNAL, CheckoutReturnSignal)
