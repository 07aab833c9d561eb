"""The users repository: plain SQL over the `users` table.

The customer and Connect account ids are saved only where the column is still NULL,
so a second writer can never overwrite the first (SPEC 2).
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from workflows.contracts.common import UserRecord

# Column names below come from these constants, never from input (hence the S608 noqa).
_COLUMNS = """
    id::text AS user_id, email, username, status, wants_payouts, stripe_customer_id,
    stripe_customer_generation, connect_account_id, connect_account_generation, tier
"""

StripeIdKind = Literal["customer", "account"]
_ID_COLUMN = {"customer": "stripe_customer_id", "account": "connect_account_id"}
_GENERATION_COLUMN = {
    "customer": "stripe_customer_generation",
    "account": "connect_account_generation",
}


class EmailTaken(Exception):
    """Another user already has this email."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_user(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> UserRecord | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608
    return UserRecord.model_validate(dict(row)) if row else None


async def get_user_by_email(db: asyncpg.Pool, email: str) -> UserRecord | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE email = $1",  # noqa: S608
        normalize_email(email),
    )
    return UserRecord.model_validate(dict(row)) if row else None


async def insert_profile(
    db: asyncpg.Pool, user_id: str, email: str, username: str, wants_payouts: bool
) -> UserRecord:
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


async def mark_active(db: asyncpg.Pool, user_id: str) -> UserRecord | None:
    await db.execute(
        "UPDATE users SET status = 'active', updated_at = now() "
        "WHERE id = $1 AND status = 'signing_up'",
        user_id,
    )
    return await get_user(db, user_id)


async def delete_signing_up_profile(db: asyncpg.Pool, user_id: str) -> None:
    """Remove a profile whose signup failed; an active user is never removed here."""
    await db.execute("DELETE FROM users WHERE id = $1 AND status = 'signing_up'", user_id)
