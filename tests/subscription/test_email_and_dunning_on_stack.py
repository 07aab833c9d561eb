"""The email activity (outbox, stable Message-ID, the SMTP sink) and the start of dunning
on the running stack: a failed renewal payment → past_due with a grace period and one
email in the sink; paying the invoice → active again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic import SecretStr

from activities.email import EmailActivities, message_id_for
from devstack.supervisor import MailSink
from tests.subscription.conftest import BillingStack
from tests.support.harness import auth
from tests.support.polling import eventually
from workflows.contracts.common import SendEmailInput


def _mail_for(sink: MailSink, address: str) -> list[tuple[str, str]]:
    return [
        (str(message["X-Onramp-Template"]), str(message["Message-ID"]))
        for message in sink.messages()
        if message["To"] == address
    ]


@pytest.mark.slow
async def test_payment_failure_starts_grace_and_emails(
    billing_stack: BillingStack, db_pool: asyncpg.Pool
) -> None:
    stack = billing_stack
    user_id = await stack.signup()
    email = (await stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()["email"]
    upgraded = await stack.api.post(
        f"/v1/users/{user_id}/subscription/upgrade",
        json={"tier": "pro", "payment_method": "pm_card_visa"},
        headers=auth(),
    )
    assert upgraded.status_code == 200, upgraded.text
    subscription_id = upgraded.json()["stripe_subscription_id"]

    failed = await stack.sandbox.http.post(
        f"/_sandbox/subscriptions/{subscription_id}/fail_payment"
    )
    assert failed.status_code == 200, failed.text
    past_due = await eventually(
        lambda: stack.subscription(user_id), lambda body: body["status"] == "past_due", seconds=20
    )
    assert past_due["tier"] == "pro" and past_due["grace_until"] is not None
    grace = datetime.fromisoformat(past_due["grace_until"])
    assert 6.9 < (grace - datetime.now(grace.tzinfo)).total_seconds() / 86400 <= 7
    mail = await eventually(lambda: _async(_mail_for(stack.smtp, email)), bool, seconds=20)
    assert [template for template, _ in mail] == ["payment_failed"]
    # Multipart: plain text, then the HTML a mail client prefers, both saying until when.
    (sent,) = [message for message in stack.smtp.messages() if message["To"] == email]
    parts = {part.get_content_type(): part.get_content() for part in sent.iter_parts()}
    assert list(parts) == ["text/plain", "text/html"]
    until = grace.astimezone(UTC)
    assert all(f"{until.day} {until:%B %Y, %H:%M} UTC" in text for text in parts.values())
    outbox = await db_pool.fetchrow(
        "SELECT id::text, template, refs::text, message_id, status FROM email_outbox "
        "WHERE user_id = $1",
        uuid.UUID(user_id),
    )
    assert outbox is not None and outbox["status"] == "sent"
    assert mail[0][1] == outbox["message_id"] == message_id_for(outbox["id"])
    assert "http" not in outbox["refs"] and "token" not in outbox["refs"]

    paid = await stack.sandbox.http.post(f"/_sandbox/subscriptions/{subscription_id}/pay")
    assert paid.status_code == 200, paid.text
    active = await eventually(
        lambda: stack.subscription(user_id), lambda body: body["status"] == "active", seconds=20
    )
    assert active["tier"] == "pro" and active["grace_until"] is None
    invoices = (await stack.api.get(f"/v1/users/{user_id}/invoices", headers=auth())).json()
    assert {invoice["status"] for invoice in invoices["data"]} == {"paid"}


async def _async(value: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return value


async def test_retried_send_is_not_sent_twice(
    billing_stack: BillingStack, db_pool: asyncpg.Pool, smtp_sink: MailSink
) -> None:
    user_id = await billing_stack.signup()
    email = (await billing_stack.api.get(f"/v1/users/{user_id}", headers=auth())).json()["email"]
    activities = EmailActivities(
        db_pool,
        smtp_sink.url,
        "onramp <noreply@onramp.local>",
        token_secret=SecretStr("test-token-secret-0123456789abcdef"),
        set_password_url="http://127.0.0.1/v1/portal/set-password",
    )
    request = SendEmailInput(
        outbox_id=str(uuid.uuid4()),
        template="payment_failed",
        user_id=user_id,
        refs={"grace_until": "2026-12-01"},
    )
    first = await activities.send_email(request)
    second = await activities.send_email(request)
    assert first == second == message_id_for(request.outbox_id)
    assert _mail_for(smtp_sink, email) == [("payment_failed", first)]
    attempts = await db_pool.fetchval(
        "SELECT attempts FROM email_outbox WHERE id = $1", uuid.UUID(request.outbox_id)
    )
    assert attempts == 2
