"""The one email activity: outbox row, stable Message-ID, SMTP.

Dunning (`subscription-<user>`) and the welcome email (`checkout-<user>`) both send
through `send_email`. The workflow hands over an outbox id (stable across retries), a
template and ids — never a token, a link or a secret: the welcome email's set-password
link is derived here from its token id, at the moment it is sent. The row is inserted
once; a send that already succeeded is not repeated; a retry after a crash between
"sent" and "marked sent" carries the same `Message-ID`, so the receiver can recognise
it. A mail server that refuses the message for good (5xx) fails the send as
`EmailRefused`, which no retry repeats.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib
import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.users import existing_user
from onramp.logging import log_event
from onramp.passwords import set_password_link
from onramp.repositories import email_outbox
from onramp.smtp import SmtpServer
from workflows import errors
from workflows.contracts.common import SendEmailInput

logger = logging.getLogger(__name__)

_SUBJECTS = {
    "payment_failed": "Your payment failed",
    "downgraded_after_grace": "Your plan was moved to free",
    "welcome": "Welcome: set your password",
    # Until the Jinja2 email templates merge (they carry set_password_link too).
    "set_password_link": "Your new link to set your password",
}
_BODIES = {
    "payment_failed": (
        "We could not charge your card for your subscription.\n"
        "Please update your payment method; your plan stays active until {grace_until}.\n"
    ),
    "downgraded_after_grace": (
        "Your payment was not received in time, so your plan is now free.\n"
        "Paying the open invoice restores your plan.\n"
    ),
    "welcome": (
        "Welcome aboard: your payment is confirmed and your workspace is ready.\n\n"
        "Choose your password here (the link works once):\n{link}\n"
    ),
    # Until the Jinja2 email templates merge (they carry set_password_link too).
    "set_password_link": (
        "You asked for a new link to set your password. Earlier links no longer work.\n\n"
        "Choose your password here (the link works once):\n{link}\n"
    ),
}


def message_id_for(outbox_id: str) -> str:
    """The Message-ID of an outbox row: the same for every attempt."""
    return f"<{outbox_id}@onramp.local>"


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "(unknown)"


class EmailActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        smtp_url: str,
        sender: str,
        *,
        token_secret: SecretStr,
        set_password_url: str,
    ) -> None:
        self.pool = pool
        self.sender = sender
        self.smtp = SmtpServer.from_url(smtp_url)
        self.token_secret = token_secret
        self.set_password_url = set_password_url

    @activity.defn
    async def send_email(self, request: SendEmailInput) -> str:
        """Send one email; returns its Message-ID."""
        user = await existing_user(self.pool, request.user_id)
        message_id = message_id_for(request.outbox_id)
        row = await email_outbox.claim_outbox(
            self.pool, request.outbox_id, request.template, request.user_id, request.refs,
            message_id,
        )  # fmt: skip
        if row.status == "sent":
            return row.message_id
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = user.email
        message["Subject"] = _SUBJECTS[request.template]
        message["Message-ID"] = row.message_id
        message["X-Onramp-Template"] = request.template
        message.set_content(_BODIES[request.template].format_map(self._fields(request)))
        await self._submit(message)
        await email_outbox.mark_outbox_sent(self.pool, request.outbox_id)
        log_event(
            logger, "EMAIL_SENT", user_id=request.user_id, template=request.template,
            outbox_id=request.outbox_id,
        )  # fmt: skip
        return row.message_id

    def _fields(self, request: SendEmailInput) -> _SafeDict:
        fields = _SafeDict(request.refs)
        if request.template in ("welcome", "set_password_link"):
            token_id = request.refs.get("token_id")
            if not token_id:
                raise ApplicationError(
                    f"a {request.template} email needs the token id of its set-password link",
                    type=errors.EMAIL_REFUSED,
                    non_retryable=True,
                )
            fields["link"] = set_password_link(self.token_secret, self.set_password_url, token_id)
        return fields

    async def _submit(self, message: EmailMessage) -> None:
        try:
            await self.smtp.send(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            # A 5xx for every recipient: another attempt gets the same answer.
            if all(refused.code >= 500 for refused in error.recipients):
                raise _refused(error) from None
            raise
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise _refused(error) from None
            raise


def _refused(error: Exception) -> ApplicationError:
    return ApplicationError(
        f"the mail server refused the message: {error}",
        type=errors.EMAIL_REFUSED,
        non_retryable=True,
    )
