"""The `onboarding-<user>` workflow (Stripe Connect).

Its input, updates, status, the messages of its activities and its typed references.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.contracts.common import STATUS_QUERY, QueryRef, UpdateRef, WorkflowRef


def onboarding_workflow_id(user_id: str) -> str:
    return f"onboarding-{user_id}"


ONBOARDING_WORKFLOW = "OnboardingWorkflow"


class OnboardingWorkflowInput(BaseModel):
    """Start input of `onboarding-<user>` (also when a Stripe event starts it)."""

    user_id: str
    # How often to re-read the account while a token is in progress (the
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


ONBOARDING = WorkflowRef(ONBOARDING_WORKFLOW, OnboardingWorkflowInput, OnboardingWorkflowStatus)
ONBOARDING_STATUS = QueryRef(ONBOARDING, STATUS_QUERY, OnboardingWorkflowStatus)
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
