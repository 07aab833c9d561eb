"""The `password-link-<user>` workflow: a fresh set-password link, sent by email.

Its input, result, status, its activities' messages and its typed references.

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
No secret is ever a field here: tokens travel as token ids.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from workflows.contracts.common import STATUS_QUERY, QueryRef, WorkflowRef

# The API starts it by name, so it never imports the workflow module.
PASSWORD_LINK_WORKFLOW = "PasswordLinkWorkflow"  # noqa: S105 - a type name


def password_link_workflow_id(user_id: str) -> str:
    """One run at a time per user: a run still open means a link is being sent."""
    return f"password-link-{user_id}"


class PasswordLinkInput(BaseModel):
    user_id: str


# Why a run sent nothing: the user is unknown, has no paid checkout, is not provisioned
# yet (the welcome email is still to come), or already has a password. The requester is
# told none of it (the same answer whoever asks).
NotSentReason = Literal["no_user", "not_paid", "not_provisioned", "password_set"]


class PasswordLinkTarget(BaseModel):
    """What Postgres says about the user, read by the run's first step."""

    eligible: bool
    reason: NotSentReason | None = None
    run_id: str | None = None  # the paid checkout run the password completes
    ttl_seconds: int = 7 * 24 * 3600


class ReplacePasswordTokenInput(BaseModel):
    """Issue `token_id` for the user's paid run and revoke the user's other unused
    set-password tokens, so only the newest link works."""

    user_id: str
    run_id: str
    token_id: str
    ttl_seconds: int


class PasswordLinkResult(BaseModel):
    sent: bool
    reason: NotSentReason | None = None
    token_id: str | None = None


PasswordLinkStep = Literal["reading", "issuing_token", "sending", "done"]


class PasswordLinkStatus(BaseModel):
    """The `status` query of `password-link-<user>`, for operators."""

    user_id: str
    step: PasswordLinkStep = "reading"
    sent: bool = False
    reason: NotSentReason | None = None


PASSWORD_LINK = WorkflowRef(PASSWORD_LINK_WORKFLOW, PasswordLinkInput, PasswordLinkResult)
PASSWORD_LINK_STATUS = QueryRef(PASSWORD_LINK, STATUS_QUERY, PasswordLinkStatus)
