"""The `connect_account_status` table: the Connect account's flags as last re-read.

The account id itself lives on the user row only (one home per Stripe id).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from onramp.repositories import Connection, Db


class AccountFlags(BaseModel):
    """The flags of a re-read account that the mirror keeps."""

    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None


class AccountStatusRow(AccountFlags):
    onboarding_completed_at: datetime | None
    updated_at: datetime


async def upsert_status(
    connection: Connection, user_id: str, flags: AccountFlags, *, complete: bool
) -> None:
    """Mirror the flags; the first `complete` stamps `onboarding_completed_at` for good."""
    await connection.execute(
        """
        INSERT INTO connect_account_status AS s (
            user_id, details_submitted, charges_enabled, payouts_enabled,
            requirements_due, disabled_reason, onboarding_completed_at, updated_at
        ) VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END, now())
        ON CONFLICT (user_id) DO UPDATE SET
            details_submitted = EXCLUDED.details_submitted,
            charges_enabled = EXCLUDED.charges_enabled,
            payouts_enabled = EXCLUDED.payouts_enabled,
            requirements_due = EXCLUDED.requirements_due,
            disabled_reason = EXCLUDED.disabled_reason,
            onboarding_completed_at = COALESCE(
                s.onboarding_completed_at, EXCLUDED.onboarding_completed_at
            ),
            updated_at = now()
        """,
        user_id,
        flags.details_submitted,
        flags.charges_enabled,
        flags.payouts_enabled,
        flags.requirements_due,
        flags.disabled_reason,
        complete,
    )


async def get_status(db: Db, user_id: str) -> AccountStatusRow | None:
    row = await db.fetchrow(
        """
        SELECT details_submitted, charges_enabled, payouts_enabled, requirements_due,
               disabled_reason, onboarding_completed_at, updated_at
        FROM connect_account_status WHERE user_id = $1
        """,
        user_id,
    )
    return AccountStatusRow.model_validate(dict(row)) if row else None
