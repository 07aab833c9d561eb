"""The `signup-<user>` workflow.

Its input, result, status and its typed references.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from workflows.contracts.common import STATUS_QUERY, QueryRef, StripeCustomerMode, WorkflowRef

# Workflow type names: the API starts workflows by name, so it never imports workflow
# modules (which pass activity modules through for their names).
SIGNUP_WORKFLOW = "SignupWorkflow"


def signup_workflow_id(user_id: str) -> str:
    return f"signup-{user_id}"


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


SIGNUP = WorkflowRef(SIGNUP_WORKFLOW, SignupInput, SignupResult)
SIGNUP_STATUS = QueryRef(SIGNUP, STATUS_QUERY, SignupStatus)
