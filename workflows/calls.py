"""Typed references to the workflows, updates, signals and queries the API calls.

The API cannot name a workflow's methods (`CheckoutWorkflow.start_checkout`) the way
Temporal's samples do: workflow modules pass activity modules through, and the API
never imports those. So each message is named here once with its argument and result
types, and a call made with a reference gets its result's type from it — no string
name and hand-passed `result_type` at each call site. `tests/workflows/test_calls.py`
checks every reference against the workflow class's own definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from workflows.contracts import (
    ADMIN_OVERRIDE_UPDATE,
    CANCEL_UPDATE,
    CHECKOUT_RETURN_SIGNAL,
    CHECKOUT_WORKFLOW,
    DOWNGRADE_UPDATE,
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    ONBOARDING_RETURNED_UPDATE,
    ONBOARDING_WORKFLOW,
    OPEN_ONBOARDING_LINK_UPDATE,
    REACTIVATE_UPDATE,
    RETRY_PROVISIONING_UPDATE,
    SIGNUP_WORKFLOW,
    START_CHECKOUT_UPDATE,
    SUBSCRIPTION_WORKFLOW,
    UPDATE_PAYMENT_METHOD_UPDATE,
    UPGRADE_UPDATE,
    AdminOverrideRequest,
    CheckoutReturnSignal,
    CheckoutStarted,
    CheckoutStatus,
    CheckoutWorkflowInput,
    DowngradeRequest,
    EmptyRequest,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
    OnboardingReturnedInput,
    OnboardingWorkflowInput,
    OnboardingWorkflowStatus,
    OpenOnboardingLinkInput,
    OpenOnboardingLinkResult,
    PaymentMethodRequest,
    RetryProvisioningRequest,
    RetryProvisioningResult,
    SignupInput,
    SignupResult,
    SignupStatus,
    StartCheckoutRequest,
    SubscriptionState,
    SubscriptionView,
    SubscriptionWorkflowInput,
    UpgradeRequest,
)

InputT = TypeVar("InputT", bound=BaseModel)
ArgT = TypeVar("ArgT", bound=BaseModel)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class WorkflowRef(Generic[InputT, ResultT]):
    """A workflow type: its registered name, its start input and its result."""

    name: str
    input: type[InputT]
    result: type[ResultT]


@dataclass(frozen=True)
class UpdateRef(Generic[InputT, ArgT, ResultT]):
    """An update of a workflow type (whose input update-with-start needs)."""

    workflow: WorkflowRef[InputT, Any]
    name: str
    argument: type[ArgT]
    result: type[ResultT]


@dataclass(frozen=True)
class SignalRef(Generic[ArgT]):
    """A signal of a workflow type."""

    workflow: WorkflowRef[Any, Any]
    name: str
    argument: type[ArgT]


@dataclass(frozen=True)
class QueryRef(Generic[ResultT]):
    """A query (without argument) of a workflow type."""

    workflow: WorkflowRef[Any, Any]
    name: str
    result: type[ResultT]


# Every workflow answers the operators' `status` query (SPEC 3).
STATUS_QUERY = "status"

SIGNUP = WorkflowRef(SIGNUP_WORKFLOW, SignupInput, SignupResult)
CHECKOUT = WorkflowRef(CHECKOUT_WORKFLOW, CheckoutWorkflowInput, CheckoutStatus)
ONBOARDING = WorkflowRef(ONBOARDING_WORKFLOW, OnboardingWorkflowInput, OnboardingWorkflowStatus)
SUBSCRIPTION = WorkflowRef(SUBSCRIPTION_WORKFLOW, SubscriptionWorkflowInput, type(None))

SIGNUP_STATUS = QueryRef(SIGNUP, STATUS_QUERY, SignupStatus)
CHECKOUT_STATUS = QueryRef(CHECKOUT, STATUS_QUERY, CheckoutStatus)
ONBOARDING_STATUS = QueryRef(ONBOARDING, STATUS_QUERY, OnboardingWorkflowStatus)
SUBSCRIPTION_STATUS = QueryRef(SUBSCRIPTION, STATUS_QUERY, SubscriptionState)

START_CHECKOUT = UpdateRef(CHECKOUT, START_CHECKOUT_UPDATE, StartCheckoutRequest, CheckoutStarted)
RETRY_PROVISIONING = UpdateRef(
    CHECKOUT, RETRY_PROVISIONING_UPDATE, RetryProvisioningRequest, RetryProvisioningResult
)
CHECKOUT_RETURNED = SignalRef(CHECKOUT, CHECKOUT_RETURN_SIGNAL, CheckoutReturnSignal)

ISSUE_ONBOARDING_TOKEN = UpdateRef(
    ONBOARDING,
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
)
OPEN_ONBOARDING_LINK = UpdateRef(
    ONBOARDING, OPEN_ONBOARDING_LINK_UPDATE, OpenOnboardingLinkInput, OpenOnboardingLinkResult
)
ONBOARDING_RETURNED = UpdateRef(
    ONBOARDING, ONBOARDING_RETURNED_UPDATE, OnboardingReturnedInput, OnboardingWorkflowStatus
)

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
