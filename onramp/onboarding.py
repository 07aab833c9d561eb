"""Onboarding's unit of work over several tables, and the status the API reads.

The statements live in the repositories (`onramp.repositories`). What is composed here
must agree across tables: when a re-read account shows onboarding complete, its flags,
the user's open tokens and the user's payouts flag change in one transaction, with the
outbound events (`onramp.events`) the change causes.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

from onramp import events
from onramp.repositories import Connection, Db, connect_account_status, onboarding_tokens, users
from onramp.repositories.connect_account_status import AccountFlags, AccountStatusRow
from onramp.repositories.onboarding_tokens import TokenStatus


class OnboardingView(BaseModel):
    """What `GET /v1/users/{id}/onboarding` shows (all from Postgres)."""

    user_id: str
    connect_account_id: str | None
    token_id: str | None
    token_status: TokenStatus | None
    token_created_at: datetime | None
    token_expires_at: datetime | None
    started_at: datetime | None
    returned_at: datetime | None
    completed_at: datetime | None
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None
    status_updated_at: datetime | None


async def record_account_status(
    pool: asyncpg.Pool, user_id: str, flags: AccountFlags, *, complete: bool
) -> list[str]:
    """Mirror the re-read account; when onboarding is complete, complete the open tokens
    and mark the user as wanting payouts. Returns the ids of the tokens this completed."""
    async with pool.acquire() as connection, connection.transaction():
        # The user's row first: the transitions below compare with the mirror as it is.
        await users.lock_user(connection, user_id)
        before = await connect_account_status.get_status(connection, user_id)
        await connect_account_status.upsert_status(connection, user_id, flags, complete=complete)
        await _account_events(connection, user_id, before, flags, complete=complete)
        if not complete:
            return []
        completed = await onboarding_tokens.complete_in_progress(connection, user_id)
        await users.set_wants_payouts(connection, user_id)
        return completed


async def _account_events(
    connection: Connection,
    user_id: str,
    before: AccountStatusRow | None,
    flags: AccountFlags,
    *,
    complete: bool,
) -> None:
    """`onboarding.completed` once per user (the first completion is stamped for good);
    `onboarding.requirements_due` each time the list of what is due changes to a
    non-empty one. A retry finds the mirror already changed: no second event."""
    first_completion = complete and (before is None or before.onboarding_completed_at is None)
    newly_due = bool(flags.requirements_due) and (
        before is None or sorted(before.requirements_due) != sorted(flags.requirements_due)
    )
    if not (first_completion or newly_due):
        return
    user = await users.get_user(connection, user_id)
    account_id = user.connect_account_id if user else None
    if first_completion:
        done = events.OnboardingCompletedV1(
            user_id=user_id, connect_account_id=account_id,
            details_submitted=flags.details_submitted, charges_enabled=flags.charges_enabled,
            payouts_enabled=flags.payouts_enabled,
        )  # fmt: skip
        await events.emit_once(connection, done, key=user_id)
    if newly_due:
        due = events.OnboardingRequirementsDueV1(
            user_id=user_id, connect_account_id=account_id,
            requirements_due=flags.requirements_due, disabled_reason=flags.disabled_reason,
        )  # fmt: skip
        await events.emit_next(connection, due)


async def onboarding_view(db: asyncpg.Pool, user_id: str) -> OnboardingView | None:
    """The user's latest token and the account's flags; None for an unknown user."""
    async with db.acquire() as connection:
        return await _view(connection, user_id)


async def _view(db: Db, user_id: str) -> OnboardingView | None:
    user = await users.get_user(db, user_id)
    if user is None:
        return None
    token = await onboarding_tokens.latest_token(db, user_id)
    status = await connect_account_status.get_status(db, user_id)
    return OnboardingView(
        user_id=user.user_id,
        connect_account_id=user.connect_account_id,
        token_id=token.token_id if token else None,
        token_status=token.status if token else None,
        token_created_at=token.created_at if token else None,
        token_expires_at=token.expires_at if token else None,
        started_at=token.started_at if token else None,
        returned_at=token.returned_at if token else None,
        completed_at=token.completed_at if token else None,
        details_submitted=status.details_submitted if status else False,
        charges_enabled=status.charges_enabled if status else False,
        payouts_enabled=status.payouts_enabled if status else False,
        requirements_due=status.requirements_due if status else [],
        disabled_reason=status.disabled_reason if status else None,
        status_updated_at=status.updated_at if status else None,
    )
