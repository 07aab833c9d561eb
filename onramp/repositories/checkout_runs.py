"""The `checkout_runs` table: one row per run of `checkout-<user>`, numbered per user.

`checkout-<user>` writes through activities, one statement per state change, so the
setup status is read from here alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Connection, Db

SessionStatus = Literal["open", "complete", "expired"]
PaymentState = Literal["unpaid", "confirming", "paid"]
PaymentOutcome = Literal["expired", "failed"]
ProvisioningState = Literal["not_started", "queued", "running", "completed", "failed"]
PasswordState = Literal["not_sent", "sent", "set"]


class CheckoutRunRow(BaseModel):
    """A run as the setup status reads it."""

    run_id: str
    workflow_id: str
    user_id: str
    attempt: int
    tier: str
    billing_cycle: str
    checkout_session_id: str
    session_status: SessionStatus
    payment_state: PaymentState
    payment_outcome: PaymentOutcome | None
    provisioning_state: ProvisioningState
    provisioning_error: str | None
    password_state: PasswordState
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    provisioned_at: datetime | None
    email_sent_at: datetime | None
    password_set_at: datetime | None


class NewCheckoutRun(BaseModel):
    """A run's row with its current session (a plan change points it at a new one)."""

    run_id: str
    workflow_id: str
    user_id: str
    tier: str
    billing_cycle: str
    session_id: str
    session_url: str | None


class CheckoutRunChange(BaseModel):
    """One state change of a run; None leaves a column as it is."""

    run_id: str
    session_status: SessionStatus | None = None
    payment_state: PaymentState | None = None
    payment_outcome: PaymentOutcome | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_error: str | None = None
    password_state: PasswordState | None = None
    subscription_id: str | None = None


class StuckCheckouts(BaseModel):
    """Paid runs not provisioned: failed (an operator's retry) and slow ones."""

    failed: int
    slow: int


_RUN_COLUMNS = """
    run_id, workflow_id, user_id::text AS user_id, attempt, tier, billing_cycle,
    checkout_session_id, session_status, payment_state, payment_outcome,
    provisioning_state, provisioning_error, password_state, created_at, updated_at,
    paid_at, provisioned_at, email_sent_at, password_set_at
"""


async def upsert_run(connection: Connection, run: NewCheckoutRun) -> int:
    """Insert the run's row (numbered per user) or point it at a new session; the attempt.

    The caller serialises numbering (it holds the user row) within its transaction.
    """
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
        run.run_id,
        run.workflow_id,
        run.user_id,
        run.tier,
        run.billing_cycle,
        run.session_id,
        run.session_url,
    )
    return attempt


async def record_state(db: Db, change: CheckoutRunChange) -> None:
    """Write the given states of one run (None keeps a column), with their timestamps."""
    await db.execute(
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
        change.run_id,
        change.session_status,
        change.payment_state,
        change.payment_outcome,
        change.provisioning_state,
        change.provisioning_error,
        change.password_state,
        change.subscription_id,
    )


async def get_run(db: Db, run_id: str, *, for_update: bool = False) -> CheckoutRunRow | None:
    """One run; `for_update` holds its row until the caller's transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM checkout_runs WHERE run_id = $1{lock}",  # noqa: S608
        run_id,
    )
    return CheckoutRunRow.model_validate(dict(row)) if row else None


async def mark_password_set(connection: Connection, run_id: str) -> None:
    await connection.execute(
        "UPDATE checkout_runs SET password_state = 'set', password_set_at = now(), "
        "updated_at = now() WHERE run_id = $1",
        run_id,
    )


async def latest_run(db: Db, user_id: str) -> CheckoutRunRow | None:
    """The user's latest run (highest attempt), None before the first checkout."""
    row = await db.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM checkout_runs "  # noqa: S608
        "WHERE user_id = $1 ORDER BY attempt DESC LIMIT 1",
        user_id,
    )
    return CheckoutRunRow.model_validate(dict(row)) if row else None


async def user_of_session(db: Db, session_id: str) -> str | None:
    user_id: str | None = await db.fetchval(
        "SELECT user_id::text FROM checkout_runs WHERE checkout_session_id = $1", session_id
    )
    return user_id


async def has_open_checkout(db: Db, user_id: str) -> bool:
    """Whether a checkout run of the user still has an open, unpaid Checkout Session."""
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM checkout_runs WHERE user_id = $1 "
        "AND session_status = 'open' AND payment_state = 'unpaid')",
        user_id,
    )
    return found


async def stuck_counts(db: Db, stuck_after_seconds: float) -> StuckCheckouts:
    """Paid runs waiting for an operator, and those not provisioned past the threshold."""
    row = await db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE provisioning_state = 'failed') AS failed,
               count(*) FILTER (WHERE provisioning_state IN ('not_started', 'queued',
                                                             'running')
                                AND paid_at < now() - make_interval(secs => $1)) AS slow
        FROM checkout_runs
        WHERE payment_state = 'paid' AND provisioning_state <> 'completed'
        """,
        stuck_after_seconds,
    )
    assert row is not None
    return StuckCheckouts(failed=int(row["failed"]), slow=int(row["slow"]))


class StuckRun(BaseModel):
    run_id: str
    user_id: str
    payment_state: str
    provisioning_state: str
    updated_at: datetime


async def stuck_runs(
    db: Db, *, confirming_seconds: float, provisioning_failed_seconds: float, limit: int
) -> list[StuckRun]:
    """Runs `confirming` a payment, or with a `failed` provisioning, unchanged past the
    thresholds (reconciliation's `stuck`)."""
    rows = await db.fetch(
        """
        SELECT run_id, user_id::text AS user_id, payment_state, provisioning_state, updated_at
        FROM checkout_runs
        WHERE (payment_state = 'confirming'
               AND updated_at < now() - make_interval(secs => $1))
           OR (provisioning_state = 'failed'
               AND updated_at < now() - make_interval(secs => $2))
        ORDER BY updated_at LIMIT $3
        """,
        confirming_seconds,
        provisioning_failed_seconds,
        limit,
    )
    return [StuckRun.model_validate(dict(row)) for row in rows]
