"""Database activities on the user row: one statement (or one transaction) each.

Creating the profile and activating the user each insert their outbound event
(`onramp.events`) in the same transaction. The repository's `UserRow` is mapped to the
`UserRecord` the workflows keep in their history by `user_record`, so a column added to
the table changes no history.
"""

from __future__ import annotations

import logging

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from onramp import events, tracing
from onramp.logging import log_event
from onramp.repositories import users
from onramp.repositories.users import UserRow
from workflows import errors
from workflows.contracts.common import (
    BumpGenerationInput,
    InsertProfileInput,
    SaveStripeIdInput,
    SaveStripeIdResult,
    UserRecord,
    UserRef,
)

logger = logging.getLogger(__name__)


def user_record(row: UserRow) -> UserRecord:
    """The user as the workflows see it (stored in their history)."""
    return UserRecord(
        user_id=row.user_id,
        email=row.email,
        username=row.username,
        status=row.status,
        wants_payouts=row.wants_payouts,
        stripe_customer_id=row.stripe_customer_id,
        stripe_customer_generation=row.stripe_customer_generation,
        connect_account_id=row.connect_account_id,
        connect_account_generation=row.connect_account_generation,
        tier=row.tier,
    )


def _not_found(user_id: str) -> ApplicationError:
    return ApplicationError(
        f"user {user_id} does not exist", type=errors.USER_NOT_FOUND, non_retryable=True
    )


async def existing_user(pool: asyncpg.Pool, user_id: str) -> UserRow:
    """The user's row; a user that does not exist is a permanent failure of the step."""
    user = await users.get_user(pool, user_id)
    if user is None:
        raise _not_found(user_id)
    return user


class UserActivities:
    def __init__(self, pool: asyncpg.Pool, *, customers_on_test_clocks: bool = False) -> None:
        self.pool = pool
        self.customers_on_test_clocks = customers_on_test_clocks

    @activity.defn
    async def insert_profile(self, request: InsertProfileInput) -> UserRecord:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                user = await users.insert_profile(
                    connection, request.user_id, request.email, request.username,
                    request.wants_payouts,
                )  # fmt: skip
                created = events.UserCreatedV1(
                    user_id=user.user_id, wants_payouts=user.wants_payouts
                )
                await events.emit_once(connection, created, key=user.user_id)
                journey = tracing.current_traceparent()
                if journey is not None:  # the signup's trace, continued by later steps
                    await users.save_traceparent(connection, request.user_id, journey)
        except users.EmailTaken:
            raise ApplicationError(
                "A user with this email already exists",
                type=errors.DUPLICATE_EMAIL,
                non_retryable=True,
            ) from None
        log_event(logger, "SIGNUP_STEP", step="profile", user_id=request.user_id)
        return user_record(user)

    @activity.defn
    async def read_user(self, request: UserRef) -> UserRecord:
        user = user_record(await existing_user(self.pool, request.user_id))
        if self.customers_on_test_clocks:
            user = user.model_copy(update={"new_customer_on_test_clock": True})
        return user

    @activity.defn
    async def save_stripe_customer_id(self, request: SaveStripeIdInput) -> SaveStripeIdResult:
        return await self._save("customer", request)

    @activity.defn
    async def save_connect_account_id(self, request: SaveStripeIdInput) -> SaveStripeIdResult:
        return await self._save("account", request)

    async def _save(
        self, kind: users.StripeIdKind, request: SaveStripeIdInput
    ) -> SaveStripeIdResult:
        held = await users.save_stripe_id(self.pool, kind, request.user_id, request.stripe_id)
        if held is None:
            raise _not_found(request.user_id)
        return SaveStripeIdResult(saved=held == request.stripe_id, existing_id=held)

    @activity.defn
    async def bump_stripe_customer_generation(self, request: BumpGenerationInput) -> None:
        await users.bump_generation(self.pool, "customer", request.user_id, request.seen_generation)

    @activity.defn
    async def bump_connect_account_generation(self, request: BumpGenerationInput) -> None:
        await users.bump_generation(self.pool, "account", request.user_id, request.seen_generation)

    @activity.defn
    async def mark_user_active(self, request: UserRef) -> UserRecord:
        async with self.pool.acquire() as connection, connection.transaction():
            user = await users.mark_active(connection, request.user_id)
            if user is None:
                raise _not_found(request.user_id)
            await events.emit_once(
                connection, events.UserActiveV1(user_id=user.user_id), key=user.user_id
            )
        log_event(logger, "SIGNUP_STEP", step="complete", user_id=request.user_id)
        return user_record(user)

    @activity.defn
    async def delete_signing_up_profile(self, request: UserRef) -> None:
        await users.delete_signing_up_profile(self.pool, request.user_id)
        log_event(logger, "SIGNUP_COMPENSATED", step="profile", user_id=request.user_id)
