"""Fixtures of the end user's set-password pages: set-password tokens in any state, and
the checkout stack (API over HTTP, sandbox, SMTP capture, worker) for the resend tests."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import asyncpg

from onramp.passwords import SET_PASSWORD
from onramp.repositories import password_tokens
from onramp.tokens import hash_token
from tests.checkout.conftest import (  # noqa: F401 - the checkout stack's fixtures
    CheckoutStack,
    catalog,
    checkout_stack,
    link_in,
    mail,
)
from tests.support.polling import eventually

TokenState = Literal["issued", "used", "revoked", "expired"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user_id: str
    email: str
    username: str


async def issue_token(
    pool: asyncpg.Pool, state: TokenState = "issued", *, username: str = "sam"
) -> IssuedToken:
    """A user with a checkout run and a set-password token in `state`."""
    user_id, run_id = str(uuid.uuid4()), f"run-{uuid.uuid4()}"
    email = f"pat.{user_id[:8]}@example.com"
    await pool.execute(
        "INSERT INTO users (id, email, username, status) VALUES ($1, $2, $3, 'active')",
        user_id,
        email,
        username,
    )
    await pool.execute(
        "INSERT INTO checkout_runs (run_id, workflow_id, user_id, attempt, tier, billing_cycle,"
        " checkout_session_id) VALUES ($1, $2, $3, 1, 'pro', 'monthly', $4)",
        run_id,
        f"checkout-{user_id}",
        user_id,
        f"cs_test_{uuid.uuid4().hex}",
    )
    token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
    token_id = str(uuid.uuid4())
    await password_tokens.insert_token(
        pool,
        token_id=token_id,
        user_id=user_id,
        run_id=run_id,
        purpose=SET_PASSWORD,
        token_hash=hash_token(token),
        ttl_seconds=600,
    )
    if state == "expired":
        await pool.execute(
            "UPDATE password_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1",
            token_id,
        )
    elif state != "issued":
        await pool.execute(
            "UPDATE password_tokens SET state = $2,"
            " used_at = CASE WHEN $2 = 'used' THEN now() END WHERE id = $1",
            token_id,
            state,
        )
    return IssuedToken(token=token, user_id=user_id, email=email, username=username)


async def paid_user(stack: CheckoutStack) -> tuple[str, str, str]:
    """A user who signed up, paid and got the welcome email: (user id, address, link)."""
    user_id, address = await stack.signup()
    started = await stack.checkout(user_id)
    paid = await stack.pay(started["checkout_session_id"])
    assert paid.status_code == 200, paid.text
    await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
    welcome = await eventually(lambda: _messages(stack, address), lambda found: len(found) == 1)
    return user_id, address, link_in(welcome[0])


async def _messages(stack: CheckoutStack, address: str) -> list[EmailMessage]:
    return stack.mail.to(address)


async def mail_to(stack: CheckoutStack, address: str, count: int) -> list[EmailMessage]:
    """Wait until `address` has `count` messages (or more); all of them, in order."""
    return await eventually(
        lambda: _messages(stack, address), lambda found: len(found) >= count, seconds=60
    )


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]
