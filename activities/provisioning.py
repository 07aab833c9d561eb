"""Provisioning activities of `checkout-<user>`: workspace, set-password token, welcome.

Each step is idempotent (a retry finds what the first attempt made) and has an undo
for the compensation of a permanently failed provisioning. Only token ids travel: the
token's hash is derived here, and the link is derived inside the email send, so no
token or link reaches workflow history, the outbox or a log (SPEC 3.0).

The welcome email uses the outbox and Message-ID of the one email activity
(`activities.email`), adding the set-password link that activity does not build.
"""

from __future__ import annotations

import logging
import uuid
from email.message import EmailMessage

import aiosmtplib
import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import message_id_for
from activities.users import existing_user
from onramp import billing, checkout
from onramp.db import PERMANENT_DB_ERRORS
from onramp.logging import log_event
from onramp.passwords import SET_PASSWORD, set_password_link
from onramp.smtp import SmtpServer
from onramp.tokens import derive_token_hash
from workflows import errors
from workflows.contracts import (
    IssuePasswordTokenInput,
    ProvisioningStepInput,
    SendWelcomeEmailInput,
    TokenRef,
)

logger = logging.getLogger(__name__)


_WELCOME_BODY = (
    "Welcome aboard: your payment is confirmed and your workspace is ready.\n\n"
    "Choose your password here (the link works once):\n{link}\n"
)


def _refused(step: str, error: Exception) -> ApplicationError:
    return ApplicationError(
        f"provisioning step {step} refused: {error}",
        {"step": step},
        type=errors.PROVISIONING_REFUSED,
        non_retryable=True,
    )


class ProvisioningActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        token_secret: SecretStr,
        set_password_url: str,
        smtp_url: str,
        sender: str,
    ) -> None:
        self.pool = pool
        self.token_secret = token_secret
        self.set_password_url = set_password_url
        self.sender = sender
        self.smtp = SmtpServer.from_url(smtp_url)

    @activity.defn
    async def create_workspace(self, request: ProvisioningStepInput) -> str:
        # The id derives from the run, so every retry of this step names the same row.
        workspace_id = _uuid_from(request.run_id)
        try:
            found = await checkout.create_workspace(
                self.pool, workspace_id, request.user_id, request.run_id
            )
        except PERMANENT_DB_ERRORS as error:
            raise _refused("workspace", error) from None
        log_event(logger, "WORKSPACE_READY", user_id=request.user_id, workspace_id=found)
        return found

    @activity.defn
    async def delete_workspace(self, request: ProvisioningStepInput) -> None:
        await checkout.delete_workspace(self.pool, request.user_id, request.run_id)
        log_event(logger, "WORKSPACE_REMOVED", user_id=request.user_id, run_id=request.run_id)

    @activity.defn
    async def issue_password_token(self, request: IssuePasswordTokenInput) -> None:
        token_hash = derive_token_hash(self.token_secret, SET_PASSWORD, request.token_id)
        try:
            await checkout.insert_password_token(
                self.pool,
                token_id=request.token_id,
                user_id=request.user_id,
                run_id=request.run_id,
                purpose=SET_PASSWORD,
                token_hash=token_hash,
                ttl_seconds=request.ttl_seconds,
            )
        except PERMANENT_DB_ERRORS as error:
            raise _refused("password_token", error) from None
        log_event(
            logger, "PASSWORD_TOKEN_ISSUED", user_id=request.user_id, token_id=request.token_id
        )

    @activity.defn
    async def revoke_password_token(self, request: TokenRef) -> None:
        await checkout.revoke_password_token(self.pool, request.token_id)

    @activity.defn
    async def send_welcome_email(self, request: SendWelcomeEmailInput) -> str:
        """Send the welcome email with the set-password link; returns its Message-ID."""
        user = await existing_user(self.pool, request.user_id)
        row = await billing.claim_outbox(
            self.pool, request.outbox_id, "welcome", request.user_id,
            {"token_id": request.token_id}, message_id_for(request.outbox_id),
        )  # fmt: skip
        if row.status == "sent":
            return row.message_id
        link = set_password_link(self.token_secret, self.set_password_url, request.token_id)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = user.email
        message["Subject"] = "Welcome: set your password"
        message["Message-ID"] = row.message_id
        message["X-Onramp-Template"] = "welcome"
        message.set_content(_WELCOME_BODY.format(link=link))
        try:
            await self.smtp.send(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            # A 5xx for the recipient: another attempt gets the same answer.
            if all(refused.code >= 500 for refused in error.recipients):
                raise _refused("welcome_email", error) from None
            raise
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise _refused("welcome_email", error) from None
            raise
        await billing.mark_outbox_sent(self.pool, request.outbox_id)
        log_event(
            logger, "EMAIL_SENT", user_id=request.user_id, template="welcome",
            outbox_id=request.outbox_id,
        )  # fmt: skip
        return row.message_id


def _uuid_from(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"onramp:workspace:{name}"))
