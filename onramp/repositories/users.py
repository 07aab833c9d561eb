"""The `users` table: the profile, the user's Stripe ids, the tier cache and the password.

The customer and Connect account ids are saved only where the column is still NULL,
so a second writer can never overwrite the first. Each Stripe id has one
home, this row; the webhook router finds an event's user here (NULL never matches).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

from onramp.repositories import Connection, Db

# Column names below come from these constants, never from input (hence the S608 noqa).
_COLUMNS = """
    id::text AS user_id, email, username, status, wants_payouts, stripe_customer_id,
    stripe_customer_generation, connect_account_id, connect_account_generation, tier,
    password_set_at
"""

StripeIdKind = Literal["customer", "account"]
_ID_COLUMN = {"customer": "stripe_customer_id", "account": "connect_account_id"}
_GENERATION_COLUMN = {
    "customer": "stripe_customer_generation",
    "account": "connect_account_generation",
}

UserStatus = Literal["signing_up", "active"]
UserTier = Literal["free", "pro", "enterprise"]


class UserRow(BaseModel):
    """A user row (without the password hash, which only `set_password_hash` touches)."""

    user_id: str
    email: str
    username: str
    status: UserStatus
    wants_payouts: bool
    stripe_customer_id: str | None
    stripe_customer_generation: int
    connect_account_id: str | None
    connect_account_generation: int
    tier: UserTier
    password_set_at: datetime | None


class EmailTaken(Exception):
    """Another user already has this email."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_user(db: Db, user_id: str) -> UserRow | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608
    return UserRow.model_validate(dict(row)) if row else None


async def get_user_by_email(db: Db, email: str) -> UserRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE email = $1",  # noqa: S608
        normalize_email(email),
    )
    return UserRow.model_validate(dict(row)) if row else None


async def insert_profile(
    db: Db, user_id: str, email: str, username: str, wants_payouts: bool
) -> UserRow:
    """Insert the profile; a retry with the same id finds its own row."""
    try:
        await db.execute(
            """
            INSERT INTO users (id, email, username, wants_payouts) VALUES ($1, $2, $3, $4)
            ON CONFLICT (id) DO NOTHING
            """,
            user_id,
            normalize_email(email),
            username,
            wants_payouts,
        )
    except asyncpg.UniqueViolationError as error:
        raise EmailTaken(normalize_email(email)) from error
    user = await get_user(db, user_id)
    assert user is not None
    if user.email != normalize_email(email):
        # The id was reused for another person: refuse rather than merge.
        raise EmailTaken(normalize_email(email))
    return user


async def save_traceparent(db: Db, user_id: str, traceparent: str) -> None:
    """Remember the signup's trace (the first one stays: a retried step keeps it)."""
    await db.execute(
        "UPDATE users SET traceparent = $2 WHERE id = $1 AND traceparent IS NULL",
        user_id,
        traceparent,
    )


async def traceparent_of(db: Db, user_id: str) -> str | None:
    """The signup's `traceparent` that the user's later operations continue."""
    found: str | None = await db.fetchval("SELECT traceparent FROM users WHERE id = $1", user_id)
    return found


async def save_stripe_id(
    db: asyncpg.Pool, kind: StripeIdKind, user_id: str, stripe_id: str
) -> str | None:
    """Save `stripe_id` if the column is NULL; return the id the row holds afterwards."""
    column = _ID_COLUMN[kind]
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            f"UPDATE users SET {column} = $2, updated_at = now() "  # noqa: S608
            f"WHERE id = $1 AND {column} IS NULL",
            user_id,
            stripe_id,
        )
        held: str | None = await connection.fetchval(
            f"SELECT {column} FROM users WHERE id = $1",  # noqa: S608
            user_id,
        )
        return held


async def bump_generation(
    db: asyncpg.Pool, kind: StripeIdKind, user_id: str, seen_generation: int
) -> None:
    """Move past a generation whose object was deleted (compare-and-set: a retry is a no-op)."""
    column = _GENERATION_COLUMN[kind]
    await db.execute(
        f"UPDATE users SET {column} = {column} + 1, updated_at = now() "  # noqa: S608
        f"WHERE id = $1 AND {column} = $2",
        user_id,
        seen_generation,
    )


async def mark_active(db: Db, user_id: str) -> UserRow | None:
    await db.execute(
        "UPDATE users SET status = 'active', updated_at = now() "
        "WHERE id = $1 AND status = 'signing_up'",
        user_id,
    )
    return await get_user(db, user_id)


async def delete_signing_up_profile(db: asyncpg.Pool, user_id: str) -> None:
    """Remove a profile whose signup failed; an active user is never removed here."""
    await db.execute("DELETE FROM users WHERE id = $1 AND status = 'signing_up'", user_id)


# --- Writes composed into other units of work (the caller holds the transaction) -----


async def lock_user(connection: Connection, user_id: str) -> None:
    """Hold the user row until the caller's transaction ends (serialises per-user work)."""
    await connection.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)


async def set_password_hash(connection: Connection, user_id: str, password_hash: str) -> None:
    await connection.execute(
        "UPDATE users SET password_hash = $2, password_set_at = now(), updated_at = now() "
        "WHERE id = $1",
        user_id,
        password_hash,
    )


async def set_wants_payouts(connection: Connection, user_id: str) -> None:
    """The user wants payouts once their Connect onboarding completed."""
    await connection.execute(
        "UPDATE users SET wants_payouts = true, updated_at = now() "
        "WHERE id = $1 AND NOT wants_payouts",
        user_id,
    )


async def set_tier(connection: Connection, user_id: str, tier: str) -> bool:
    """Write the auth cache of the tier; False when the user does not exist."""
    updated = await connection.execute(
        "UPDATE users SET tier = $2, updated_at = now() WHERE id = $1", user_id, tier
    )
    return bool(updated == "UPDATE 1")


# --- Who a Stripe event belongs to ---------------------------------------------------


async def user_exists(db: Db, user_id: str) -> bool:
    found = await db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
    return found is not None


async def user_by_stripe_customer(db: Db, customer_id: str) -> str | None:
    found: str | None = await db.fetchval(
        "SELECT id::text FROM users WHERE stripe_customer_id = $1", customer_id
    )
    return found


async def user_by_connect_account(db: Db, account_id: str) -> str | None:
    found: str | None = await db.fetchval(
        "SELECT id::text FROM users WHERE connect_account_id = $1", account_id
    )
    return found


async def connect_account_of(db: Db, user_id: str) -> tuple[bool, str | None]:
    """(user exists, the user's saved Connect account id or None)."""
    row = await db.fetchrow("SELECT connect_account_id FROM users WHERE id = $1", user_id)
    if row is None:
        return False, None
    account: str | None = row["connect_account_id"]
    return True, account


class SavedStripeIds(BaseModel):
    """A user's saved Stripe ids, as reconciliation compares them with Stripe."""

    user_id: str
    status: str
    stripe_customer_id: str | None
    connect_account_id: str | None
    created_at: datetime


_SAVED_IDS = (
    "SELECT id::text AS user_id, status, stripe_customer_id, connect_account_id, created_at "
    "FROM users"
)


async def saved_ids_of(db: Db, user_ids: list[str]) -> list[SavedStripeIds]:
    """The saved ids of the users that exist among `user_ids` (uuids)."""
    rows = await db.fetch(f"{_SAVED_IDS} WHERE id = ANY($1::uuid[])", user_ids)
    return [SavedStripeIds.model_validate(dict(row)) for row in rows]


async def saved_ids_of_customers(db: Db, customer_ids: list[str]) -> list[SavedStripeIds]:
    """The users whose saved customer is one of `customer_ids`."""
    rows = await db.fetch(
        f"{_SAVED_IDS} WHERE stripe_customer_id = ANY($1::text[])",
        customer_ids,
    )
    return [SavedStripeIds.model_validate(dict(row)) for row in rows]


async def saved_ids_page(db: Db, after_user_id: str | None, limit: int) -> list[SavedStripeIds]:
    """Users with a saved customer or account, by id after `after_user_id` (keyset)."""
    rows = await db.fetch(
        f"{_SAVED_IDS} WHERE (stripe_customer_id IS NOT NULL OR connect_account_id IS NOT NULL) "
        "AND ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2",
        after_user_id,
        limit,
    )
    return [SavedStripeIds.model_validate(dict(row)) for row in rows]
