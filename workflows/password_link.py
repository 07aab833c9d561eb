"""`password-link-<user>`: send a user a fresh set-password link.

Started by the API's resend route (by email, an expired link or a status-page view
token), which answers the same whatever happens here. The run reads Postgres to decide:
only a user whose checkout is paid and whose password is not set gets an email. It then
issues a new token (its id only) while revoking the user's earlier unused ones, so a
link sent before stops working, and sends the `set_password_link` email through the
one email activity, which derives the link from the token id at the moment it sends.

Each run is short; the workflow id is reused once a run has closed, and a request that
finds a run open joins it (a send is already under way).
"""

from __future__ import annotations

from temporalio import workflow

from workflows.contracts.common import SendEmailInput, UserRef
from workflows.contracts.password_link import (
    PASSWORD_LINK_WORKFLOW,
    PasswordLinkInput,
    PasswordLinkResult,
    PasswordLinkStatus,
    ReplacePasswordTokenInput,
)
from workflows.local_steps import database_step, email_step

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from activities.password_links import PasswordLinkActivities


@workflow.defn(name=PASSWORD_LINK_WORKFLOW)
class PasswordLinkWorkflow:
    def __init__(self) -> None:
        self._status: PasswordLinkStatus | None = None

    @workflow.query
    def status(self) -> PasswordLinkStatus:
        return self._status or PasswordLinkStatus(user_id="")

    @workflow.run
    async def run(self, request: PasswordLinkInput) -> PasswordLinkResult:
        self._status = PasswordLinkStatus(user_id=request.user_id)
        target = await database_step(
            PasswordLinkActivities.password_link_target, UserRef(user_id=request.user_id)
        )
        if not target.eligible or target.run_id is None:
            self._status.step = "done"
            self._status.reason = target.reason
            workflow.logger.info(
                "PASSWORD_LINK_NOT_SENT",
                extra={"user_id": request.user_id, "reason": target.reason},
            )
            return PasswordLinkResult(sent=False, reason=target.reason)
        self._status.step = "issuing_token"
        token_id = str(workflow.uuid4())
        await database_step(
            PasswordLinkActivities.replace_password_token,
            ReplacePasswordTokenInput(
                user_id=request.user_id,
                run_id=target.run_id,
                token_id=token_id,
                ttl_seconds=target.ttl_seconds,
            ),
        )
        self._status.step = "sending"
        await email_step(
            EmailActivities.send_email,
            SendEmailInput(
                outbox_id=str(workflow.uuid4()),
                template="set_password_link",
                user_id=request.user_id,
                refs={"token_id": token_id},
            ),
        )
        self._status.step = "done"
        self._status.sent = True
        workflow.logger.info("PASSWORD_LINK_SENT", extra={"user_id": request.user_id})
        return PasswordLinkResult(sent=True, token_id=token_id)
