"""What every workflow shares.

Tiers, the Stripe event signal, the user and the "ensure" steps' messages, email, and
the typed references (`WorkflowRef`, `UpdateRef`, `SignalRef`, `QueryRef`) the API calls
workflows with: a call made with a reference gets its types from it, and
`tests/workflows/test_calls.py` checks every reference against its handler.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

Tier = Literal["free", "pro", "enterprise"]
BillingCycle = Literal["monthly", "yearly"]
StripeCustomerMode = Literal["eager", "lazy"]


class StripeEventSignal(BaseModel):
    """A Stripe event as a trigger: ids only, never the object (workflows re-read it)."""

    event_id: str
    type: str
    created: datetime
    livemode: bool = False
    account: str | None = None
    object_id: str = Field(description="id of the event's data.object")
    object_type: str = ""


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

    Parameters are the same whichever workflow asks: the email from the
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


STRIPE_EVENT_SIGNAL = "stripe_event"
EmailTemplate = Literal["payment_failed", "downgraded_after_grace", "welcome", "set_password_link"]


class ReadStripeObjectInput(BaseModel):
    stripe_id: str


class SendEmailInput(BaseModel):
    """One email: the outbox id (from the workflow, stable across retries), the template
    and ids only — never a token, a link or a secret."""

    outbox_id: str
    template: EmailTemplate
    user_id: str
    refs: dict[str, str] = Field(default_factory=dict)


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


# Every workflow answers the operators' `status` query.
STATUS_QUERY = "status"
