"""The checkout repository: runs of `checkout-<user>`, workspaces, set-password tokens.

`checkout-<user>` writes through activities, one statement (or one transaction) per
state change; the API reads the setup status from here (SPEC 3.3: right while the flow
runs, after it ended, and with the worker down) and stores a password in one
transaction with its token and `password_state`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import asyncpg
from pydantic import BaseModel

from workflows.contracts.checkout import (
    NextAction,
    PasswordState,
    PaymentState,
    ProvisioningState,
    RecordCheckoutSessionInput,
    RecordCheckoutStateInput,
)

# Stripe statuses of a subscription that has ended: only then may a checkout create
# another one. Every other status is a subscription that bills, or will as soon as its
# first invoice is paid (`incomplete`: its hosted invoice page still takes the payment
# for 23 h), so a second one from a checkout would bill the user twice.
ENDED_SUBSCRIPTION_STATUSES = ("none", "canceled", "incomplete_expired")


class SetupStatus(BaseModel):
    """The status contract of SPEC 3.3, plus timestamps and the workflow id."""

    user_id: str
    payment_state: PaymentState
    provisioning_state: ProvisioningState
    password_state: PasswordState
    next_action: NextAction
    workflow_id: str | None
    attempt: int | None
    checkout_session_id: str | None
    tier: str | None
    billing_cycle: str | None
    created_at: datetime | None
    updated_at: datetime | None
    paid_at: datetime | None
    provisioned_at: datetime | None
    email_sent_at: datetime | None
    password_set_at: datetime | None


def next_action(
    payment: PaymentState, provisioning: ProvisioningState, password: PasswordState
) -> NextAction:
    """What the client should show next, from the three states alone."""
    if payment == "unpaid":
        return "pay"
    if payment == "confirming" or provisioning != "completed":
        return "wait_provisioning"
    return "go_to_dashboard" if password == "set" else "set_password"  # noqa: S105


async def record_session(pool: asyncpg.Pool, request: RecordCheckoutSessionInput) -> int:
    """Insert the run's row (numbered per user) or point it at a new session; the attempt."""
    async with pool.acquire() as connection, connection.transaction():
        # One open checkout per user: serialise numbering on the user row.
        await connection.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", request.user_id)
        attempt: int = await connection.fetchval(
            """
            INSERT INTO checkout_runs (
                run_id, workflow_id, user_id, attempt, tier, billing_cycle,
                checkout_session_id, session_url
            )
            VALUES (
                $1, $2, $3,
                (SELECT COALESCE(MAX(attempt), 0) + 1 FROM checkout_runs WHERE user_id = $3),
                $4, $5, $6, $7
            )
            ON CONFLICT (run_id) DO UPDATE SET
                tier = EXCLUDED.tier, billing_cycle = EXCLUDED.billing_cycle,
                checkout_session_id = EXCLUDED.checkout_session_id,
                session_url = EXCLUDED.session_url, session_status = 'open',
                payment_state = 'unpaid', payment_outcome = NULL, updated_at = now()
            RETURNING attempt
            """,
            request.run_id,
            request.workflow_id,
            request.user_id,
            request.tier,
            request.billing_cycle,
            request.session_id,
            request.session_url,
        )
        return attempt


async def record_state(pool: asyncpg.Pool, request: RecordCheckoutStateInput) -> None:
    """Write the given states of one run (None keeps a column), with their timestamps."""
    await pool.execute(
        """
        UPDATE checkout_runs SET
            session_status = COALESCE($2, session_status),
            payment_state = COALESCE($3, payment_state),
            payment_outcome = COALESCE($4, payment_outcome),
            provisioning_state = COALESCE($5, provisioning_state),
            provisioning_error = CASE WHEN $5::text IS NULL THEN provisioning_error ELSE $6 END,
            password_state = CASE
                WHEN password_state = 'set' THEN password_state
                ELSE COALESCE($7, password_state) END,
            stripe_subscription_id = COALESCE($8, stripe_subscription_id),
            paid_at = CASE WHEN $3 = 'paid' THEN COALESCE(paid_at, now()) ELSE paid_at END,
            provisioned_at = CASE
                WHEN $5 = 'completed' THEN COALESCE(provisioned_at, now())
                ELSE provisioned_at END,
            email_sent_at = CASE
                WHEN $7 = 'sent' THEN COALESCE(email_sent_at, now()) ELSE email_sent_at END,
            updated_at = now()
        WHERE run_id = $1
        """,
        request.run_id,
        request.session_status,
        request.payment_state,
        request.payment_outcome,
        request.provisioning_state,
        request.provisioning_error,
        request.password_state,
        request.subscription_id,
    )


async def setup_status(pool: asyncpg.Pool, user_id: str) -> SetupStatus | None:
    """The user's latest checkout run as the status contract; None for an unknown user."""
    row = await pool.fetchrow(
        """
        SELECT r.*, u.id::text AS the_user_id, u.password_set_at AS user_password_set_at
        FROM users u
        LEFT JOIN LATERAL (
            SELECT * FROM checkout_runs WHERE user_id = u.id ORDER BY attempt DESC LIMIT 1
        ) r ON true
        WHERE u.id = $1
        """,
        user_id,
    )
    if row is None:
        return None
    if row["run_id"] is None:
        return SetupStatus(
            user_id=row["the_user_id"],
            payment_state="unpaid",
            provisioning_state="not_started",
            password_state="set" if row["user_password_set_at"] else "not_sent",
            next_action="pay",
            workflow_id=None,
            attempt=None,
            checkout_session_id=None,
            tier=None,
            billing_cycle=None,
            created_at=None,
            updated_at=None,
            paid_at=None,
            provisioned_at=None,
            email_sent_at=None,
            password_set_at=row["user_password_set_at"],
        )
    payment: PaymentState = row["payment_state"]
    provisioning: ProvisioningState = row["provisioning_state"]
    password: PasswordState = row["password_state"]
    return SetupStatus(
        user_id=row["the_user_id"],
        payment_state=payment,
        provisioning_state=provisioning,
        password_state=password,
        next_action=next_action(payment, provisioning, password),
        workflow_id=row["workflow_id"],
        attempt=row["attempt"],
        checkout_session_id=row["checkout_session_id"],
        tier=row["tier"],
        billing_cycle=row["billing_cycle"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        paid_at=row["paid_at"],
        provisioned_at=row["provisioned_at"],
        email_sent_at=row["email_sent_at"],
        password_set_at=row["password_set_at"],
    )


async def user_of_session(pool: asyncpg.Pool, session_id: str) -> str | None:
    user_id: str | None = await pool.fetchval(
        "SELECT user_id::text FROM checkout_runs WHERE checkout_session_id = $1", session_id
    )
    return user_id


async def blocking_subscription(pool: asyncpg.Pool, user_id: str) -> str | None:
    """The status of the user's Stripe subscription when one exists that has not ended
    (from the billing row `subscription-<user>` writes); None when a checkout may start."""
    status: str | None = await pool.fetchval(
        """
        SELECT status FROM billing
        WHERE user_id = $1 AND stripe_subscription_id IS NOT NULL
          AND NOT (status = ANY($2::text[]))
        """,
        user_id,
        list(ENDED_SUBSCRIPTION_STATUSES),
    )
    return status


def blocking_reason(status: str) -> str:
    """Why a checkout is refused while the user's subscription has this status."""
    if status == "incomplete":
        return (
            "the user's subscription is awaiting its first payment; pay its invoice "
            "(the hosted invoice page) or start again once Stripe has expired it"
        )
    return f"the user has a {status} subscription; change plans through the subscription"


# --- workspaces --------------------------------------------------------------------


async def create_workspace(pool: asyncpg.Pool, workspace_id: str, user_id: str, run_id: str) -> str:
    """The user's workspace: created once, found again by a retry (or a later run)."""
    await pool.execute(
        "INSERT INTO workspaces (id, user_id, run_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id) DO NOTHING",
        workspace_id,
        user_id,
        run_id,
    )
    existing: str = await pool.fetchval(
        "SELECT id::text FROM workspaces WHERE user_id = $1", user_id
    )
    return existing


async def delete_workspace(pool: asyncpg.Pool, user_id: str, run_id: str) -> None:
    """Compensation: remove the workspace only if this run created it."""
    await pool.execute("DELETE FROM workspaces WHERE user_id = $1 AND run_id = $2", user_id, run_id)


# --- set-password tokens ---------------------------------------------------------------


async def insert_password_token(
    pool: asyncpg.Pool,
    *,
    token_id: str,
    user_id: str,
    run_id: str,
    purpose: str,
    token_hash: str,
    ttl_seconds: int,
) -> None:
    """Store the token's hash and expiry once (a retry finds its own row)."""
    await pool.execute(
        """
        INSERT INTO password_tokens (id, user_id, run_id, purpose, token_hash, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
        ON CONFLICT (id) DO NOTHING
        """,
        token_id,
        user_id,
        run_id,
        purpose,
        token_hash,
        float(ttl_seconds),
    )


async def revoke_password_token(pool: asyncpg.Pool, token_id: str) -> None:
    await pool.execute(
        "UPDATE password_tokens SET state = 'revoked' WHERE id = $1 AND state = 'issued'",
        token_id,
    )


class SetPasswordOutcome(Enum):
    SET = "set"
    UNKNOWN = "unknown"
    GONE = "gone"


async def set_password(
    pool: asyncpg.Pool, *, token_hash: str, purpose: str, password_hash: str
) -> SetPasswordOutcome:
    """In one transaction: store the hash, use up the token, `password_state=set`."""
    async with pool.acquire() as connection, connection.transaction():
        token = await connection.fetchrow(
            """
            SELECT id, user_id, run_id, state, expires_at <= now() AS expired
            FROM password_tokens WHERE token_hash = $1 AND purpose = $2 FOR UPDATE
            """,
            token_hash,
            purpose,
        )
        if token is None:
            return SetPasswordOutcome.UNKNOWN
        if token["state"] != "issued" or token["expired"]:
            return SetPasswordOutcome.GONE
        await connection.execute(
            "UPDATE users SET password_hash = $2, password_set_at = now(), updated_at = now() "
            "WHERE id = $1",
            token["user_id"],
            password_hash,
        )
        await connection.execute(
            "UPDATE password_tokens SET state = 'used', used_at = now() WHERE id = $1",
            token["id"],
        )
        await connection.execute(
            "UPDATE checkout_runs SET password_state = 'set', password_set_at = now(), "
            "updated_at = now() WHERE run_id = $1",
            token["run_id"],
        )
        return SetPasswordOutcome.SET


async def token_is_usable(
    pool: asyncpg.Pool, *, token_hash: str, purpose: str
) -> SetPasswordOutcome:
    """For the form page: SET means the token may still be used."""
    row = await pool.fetchrow(
        "SELECT state, expires_at <= now() AS expired FROM password_tokens "
        "WHERE token_hash = $1 AND purpose = $2",
        token_hash,
        purpose,
    )
    if row is None:
        return SetPasswordOutcome.UNKNOWN
    if row["state"] != "issued" or row["expired"]:
        return SetPasswordOutcome.GONE
    return SetPasswordOutcome.SET
