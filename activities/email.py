"""The one email activity (SPEC 3.4, 3.3): outbox row, stable Message-ID, SMTP.

The workflow hands over an outbox id (stable across retries), a template and ids —
never a token, a link or a secret. The row is inserted once; a send that already
succeeded is not repeated; a retry after a crash between "sent" and "marked sent"
carries the same `Message-ID`, so the receiver can recognise it.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

import asyncpg
from temporalio import activity

from activities.users import existing_user
from onramp import billing
from onramp.logging import log_event
from onramp.smtp import SmtpServer
from workflows.contracts import SendEmailInput

logger = logging.getLogger(__name__)

_SUBJECTS = {
    "payment_failed": "Your payment failed",
    "downgraded_after_grace": "Your plan was moved to free",
    "welcome": "Welcome",
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
    "welcome": "Welcome aboard.\n",
}


def message_id_for(outbox_id: str) -> str:
    """The Message-ID of an outbox row: the same for every attempt."""
    return f"<{outbox_id}@onramp.local>"


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "(unknown)"


class EmailActivities:
    def __init__(self, pool: asyncpg.Pool, smtp_url: str, sender: str) -> None:
        self.pool = pool
        self.sender = sender
        self.smtp = SmtpServer.from_url(smtp_url)

    @activity.defn
    async def send_email(self, request: SendEmailInput) -> str:
        """Send one email; returns its Message-ID."""
        user = await existing_user(self.pool, request.user_id)
        message_id = message_id_for(request.outbox_id)
        row = await billing.claim_outbox(
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
        message.set_content(_BODIES[request.template].format_map(_SafeDict(request.refs)))
        await self.smtp.send(message)
        await billing.mark_outbox_sent(self.pool, request.outbox_id)
        log_event(
            logger, "EMAIL_SENT", user_id=request.user_id, template=request.template,
            outbox_id=request.outbox_id,
        )  # fmt: skip
        return row.message_id
