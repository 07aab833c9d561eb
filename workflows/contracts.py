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


class SubscriptionWorkflowInput(BaseModel):
    """Start input of `subscription-<user>` (also when a Stripe event starts it)."""

    user_id: str
