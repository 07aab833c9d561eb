"""Checkout's units of work over several tables, and the setup status the API reads.

The statements live in the repositories (`onramp.repositories`); what is composed here
must agree across tables: a run is numbered while its user row is held, and a password
is stored in one transaction with its token and the run's `password_state`. Each
change inserts its outbound events (`onramp.events`) in its own transaction. The setup
status is read from Postgres alone.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

import asyncpg
from pydantic import BaseModel

from onramp import events
from onramp.repositories import (
    Connection,
    checkout_runs,
    password_tokens,
    provisioned_tenants,
    users,
)
from onramp.repositories.checkout_runs import (
    CheckoutRunChange,
    CheckoutRunRow,
    NewCheckoutRun,
    PasswordState,
    PaymentState,
    ProvisioningState,
)

NextAction = Literal["pay", "wait_provisioning", "set_password", "go_to_dashboard"]


class SetupStatus(BaseModel):
    """The one setup-status contract (docs/CHECKOUT.md), plus timestamps and the workflow id."""

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
    # The platform's tenant, when the provisioning hook made one (docs/PROVISIONING_HOOK.md).
    tenant_id: str | None = None
    dashboard_url: str | None = None


def next_action(
    payment: PaymentState, provisioning: ProvisioningState, password: PasswordState
) -> NextAction:
    """What the client should show next, from the three states alone."""
    if payment == "unpaid":
        return "pay"
    if payment == "confirming" or provisioning != "completed":
        return "wait_provisioning"
    return "go_to_dashboard" if password == "set" else "set_password"  # noqa: S105


def blocking_reason(status: str) -> str:
    """Why a checkout is refused while the user's subscription has this status."""
    if status == "incomplete":
        return (
            "the user's subscription is awaiting its first payment; pay its invoice "
            "(the hosted invoice page) or start again once Stripe has expired it"
        )
    return f"the user has a {status} subscription; change plans through the subscription"


async def record_session(pool: asyncpg.Pool, run: NewCheckoutRun) -> int:
    """Insert the run's row (numbered per user) or point it at a new session; the attempt."""
    async with pool.acquire() as connection, connection.transaction():
        # One open checkout per user: serialise numbering on the user row.
        await users.lock_user(connection, run.user_id)
        return await checkout_runs.upsert_run(connection, run)


async def record_run_state(
    pool: asyncpg.Pool, change: CheckoutRunChange
) -> checkout_runs.CheckoutRunRow | None:
    """Write one state change of a run and the events it causes, all or nothing; the
    run as it was before (None: no such run)."""
    async with pool.acquire() as connection, connection.transaction():
        found = await checkout_runs.get_run(connection, change.run_id)
        if found is None:
            return None
        # The user's row first (as `record_session` does), then the run's: a repeatable
        # event's id reads the user's latest events, which must not move meanwhile.
        await users.lock_user(connection, found.user_id)
        before = await checkout_runs.get_run(connection, change.run_id, for_update=True)
        assert before is not None
        await checkout_runs.record_state(connection, change)
        await _run_events(connection, before, change)
    return before


async def _run_events(
    connection: Connection, run: CheckoutRunRow, change: CheckoutRunChange
) -> None:
    ids = {
        "user_id": run.user_id,
        "run_id": run.run_id,
        "workflow_id": run.workflow_id,
        "attempt": run.attempt,
    }
    if change.payment_state == "paid":
        paid = events.CheckoutPaidV1(
            **ids,
            tier=run.tier,
            billing_cycle=run.billing_cycle,
            checkout_session_id=run.checkout_session_id,
            subscription_id=change.subscription_id,
        )
        await events.emit_once(connection, paid, key=run.run_id)
    if change.provisioning_state == "completed":
        completed = events.ProvisioningCompletedV1(**ids, tier=run.tier)
        await events.emit_once(connection, completed, key=run.run_id)
    # A run may fail, be retried by an operator and fail again: one event per failure,
    # none for a retried activity that finds the run already failed.
    if change.provisioning_state == "failed" and run.provisioning_state != "failed":
        step = change.provisioning_error.split(":", 1)[0] if change.provisioning_error else None
        await events.emit_next(connection, events.ProvisioningFailedV1(**ids, failed_step=step))


async def setup_status(pool: asyncpg.Pool, user_id: str) -> SetupStatus | None:
    """The user's latest checkout run as the status contract; None for an unknown user."""
    async with pool.acquire() as connection:
        user = await users.get_user(connection, user_id)
        if user is None:
            return None
        run = await checkout_runs.latest_run(connection, user_id)
        tenant = (
            await provisioned_tenants.tenant_of_run(connection, run.run_id)
            if run is not None
            else None
        )
    if run is None:
        return SetupStatus(
            user_id=user.user_id,
            payment_state="unpaid",
            provisioning_state="not_started",
            password_state="set" if user.password_set_at else "not_sent",
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
            password_set_at=user.password_set_at,
        )
    return SetupStatus(
        user_id=user.user_id,
        payment_state=run.payment_state,
        provisioning_state=run.provisioning_state,
        password_state=run.password_state,
        next_action=next_action(run.payment_state, run.provisioning_state, run.password_state),
        workflow_id=run.workflow_id,
        attempt=run.attempt,
        checkout_session_id=run.checkout_session_id,
        tier=run.tier,
        billing_cycle=run.billing_cycle,
        created_at=run.created_at,
        updated_at=run.updated_at,
        paid_at=run.paid_at,
        provisioned_at=run.provisioned_at,
        email_sent_at=run.email_sent_at,
        password_set_at=run.password_set_at,
        tenant_id=tenant.tenant_id if tenant is not None else None,
        dashboard_url=tenant.dashboard_url if tenant is not None else None,
    )


class SetPasswordOutcome(Enum):
    SET = "set"
    UNKNOWN = "unknown"
    GONE = "gone"


def _outcome(token: password_tokens.PasswordTokenRow | None) -> SetPasswordOutcome:
    if token is None:
        return SetPasswordOutcome.UNKNOWN
    return SetPasswordOutcome.SET if token.usable else SetPasswordOutcome.GONE


async def set_password(
    pool: asyncpg.Pool, *, token_hash: str, purpose: str, password_hash: str
) -> SetPasswordOutcome:
    """In one transaction: store the hash, use up the token, `password_state=set`."""
    async with pool.acquire() as connection, connection.transaction():
        token = await password_tokens.lock_by_hash(
            connection, token_hash=token_hash, purpose=purpose
        )
        outcome = _outcome(token)
        if token is None or outcome is not SetPasswordOutcome.SET:
            return outcome
        await users.set_password_hash(connection, token.user_id, password_hash)
        await password_tokens.mark_used(connection, token.token_id)
        await checkout_runs.mark_password_set(connection, token.run_id)
        # A token is used once, so it names the change.
        password_set = events.PasswordSetV1(user_id=token.user_id, run_id=token.run_id)
        await events.emit_once(connection, password_set, key=token.token_id)
        return SetPasswordOutcome.SET


async def token_is_usable(
    pool: asyncpg.Pool, *, token_hash: str, purpose: str
) -> SetPasswordOutcome:
    """For the form page: SET means the token may still be used."""
    return _outcome(
        await password_tokens.find_by_hash(pool, token_hash=token_hash, purpose=purpose)
    )
